import { ServerResponse } from 'node:http';

/** Server-sent events written straight to the socket (clients send Accept: application/json even when streaming). */
export class SseWriter {
  private open = true;

  constructor(private readonly res: ServerResponse, headers: Record<string, string> = {}) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      ...headers,
    });
    res.on('close', () => (this.open = false));
  }

  get isOpen(): boolean {
    return this.open && !this.res.destroyed;
  }

  data(payload: unknown): void {
    if (this.isOpen) this.res.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  }

  end(): void {
    if (this.isOpen) {
      this.res.write('data: [DONE]\n\n');
      this.res.end();
    }
  }
}
