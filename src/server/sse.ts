import { FastifyReply } from 'fastify';

/**
 * Server-sent events written straight to the socket (clients send Accept:
 * application/json even when streaming). Headers go out with the first event,
 * so a request refused before its first token still gets a plain JSON error.
 */
export class SseWriter {
  private started = false;
  private closed = false;

  constructor(private readonly reply: FastifyReply) {}

  get hasStarted(): boolean {
    return this.started;
  }

  get isOpen(): boolean {
    return !this.closed && !this.reply.raw.destroyed;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    const res = this.reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': String(this.reply.request.id),
    });
    res.on('close', () => (this.closed = true));
  }

  data(payload: unknown): void {
    this.start();
    if (this.isOpen) this.reply.raw.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  }

  end(): void {
    this.start();
    if (this.isOpen) {
      this.reply.raw.write('data: [DONE]\n\n');
      this.reply.raw.end();
    }
  }
}
