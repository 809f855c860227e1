import { setMaxListeners } from 'node:events';
import { FastifyReply, FastifyRequest } from 'fastify';
import { GenerateChunk, GenerateResult, PreparedRequest } from '../../engine/engine.js';
import { ServerContext } from '../context.js';
import { RequestTimer } from '../metrics.js';
import { renderError } from '../errors.js';
import { SseWriter } from '../sse.js';

/** One admitted generation request: its abort signal, metrics and cleanup. */
export class RunningRequest {
  readonly timer: RequestTimer;
  private readonly slot: ReturnType<ServerContext['admit']>;

  constructor(
    readonly ctx: ServerContext,
    request: FastifyRequest,
    reply: FastifyReply,
  ) {
    this.slot = ctx.admit();
    this.timer = new RequestTimer(ctx.metrics);
    // Each of n choices listens on this signal.
    setMaxListeners(64, this.slot.controller.signal);
    // A client that goes away frees its place in the engine at once.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) this.slot.controller.abort();
    });
    request.raw.on('aborted', () => this.slot.controller.abort());
  }

  get signal(): AbortSignal {
    return this.slot.controller.signal;
  }

  /** Seeds differ per choice so n > 1 samples differ yet stay reproducible. */
  variant(prepared: PreparedRequest, i: number): PreparedRequest {
    if (i === 0) return prepared;
    const seed = prepared.sampling.seed;
    return { ...prepared, sampling: { ...prepared.sampling, seed: seed === undefined ? undefined : seed + i } };
  }

  /** Runs n choices to completion. */
  async collect(prepared: PreparedRequest, n: number): Promise<GenerateResult[]> {
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => this.ctx.engine.collect(this.observe(this.ctx.engine.stream(this.variant(prepared, i), { signal: this.signal, reuse: n > 1 })), prepared.prompt)),
    );
    this.finish(results.map((r) => r.usage));
    return results;
  }

  /** Runs n choices, handing each chunk (with its choice index) to `onChunk` as it comes. */
  async streamChoices(prepared: PreparedRequest, n: number, onChunk: (index: number, c: GenerateChunk) => void): Promise<GenerateChunk[]> {
    const finals = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        let last: GenerateChunk | null = null;
        for await (const c of this.observe(this.ctx.engine.stream(this.variant(prepared, i), { signal: this.signal, reuse: n > 1 }))) {
          onChunk(i, c);
          last = c;
        }
        return last!;
      }),
    );
    this.finish(finals.map((c) => c.usage!));
    return finals;
  }

  private async *observe(s: AsyncGenerator<GenerateChunk>): AsyncGenerator<GenerateChunk> {
    for await (const c of s) {
      this.timer.tokens(c.tokenIds.length);
      yield c;
    }
  }

  private finish(usages: Array<{ promptTokens: number; completionTokens: number; cachedTokens?: number }>): void {
    const completion = usages.reduce((a, u) => a + u.completionTokens, 0);
    this.timer.done(usages[0]?.promptTokens ?? 0, completion, usages[0]?.cachedTokens ?? 0);
  }

  release(): void {
    this.slot.release();
  }
}

/**
 * Streams a response as server-sent events: `body` writes the events; an error
 * after the headers went out becomes an error event; `data: [DONE]` ends it.
 */
export async function streamSse(ctx: ServerContext, reply: FastifyReply, body: (sse: SseWriter) => Promise<void>): Promise<FastifyReply> {
  const sse = new SseWriter(reply);
  try {
    await body(sse);
  } catch (e) {
    // Nothing sent yet: the error handler answers with the right status.
    if (!sse.hasStarted) throw e;
    const r = renderError(e, String(reply.request.id));
    if (r.internal) ctx.log.error({ err: e, reqId: reply.request.id }, 'stream failed');
    sse.data(r.body);
  }
  sse.end();
  return reply;
}
