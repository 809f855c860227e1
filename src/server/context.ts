import { FastifyBaseLogger } from 'fastify';
import { Engine } from '../engine/engine.js';
import { IrisError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import { defaultToolCallParser, toolCallParser, type ToolCallFormat, type ToolCallParser } from '../tools/index.js';
import { ServerMetrics } from './metrics.js';

export interface ServeOptions {
  host: string;
  port: number;
  servedModelName: string;
  apiKey: string | null;
  /** Requests admitted at once (running + waiting) before answering 503. */
  maxConcurrentRequests: number;
  maxBodyBytes: number;
  /** Seconds in-flight requests get to finish after SIGTERM/SIGINT. */
  shutdownGraceSeconds: number;
  disableRadixCache?: boolean;
  /** The format tool calls are written and read in (--tool-call-parser); default: the model family's. */
  toolCallParser?: ToolCallFormat;
  /** Serve the chat page at / (iris serve does unless --disable-playground). */
  playground?: boolean;
}

/** What every route handler shares. */
export class ServerContext {
  readonly metrics: ServerMetrics;
  private inflight = 0;
  draining = false;
  readonly controllers = new Set<AbortController>();
  private parser: ToolCallParser | null = null;

  constructor(
    readonly engine: Engine,
    readonly opts: ServeOptions,
    readonly log: FastifyBaseLogger,
  ) {
    this.metrics = new ServerMetrics(opts.servedModelName);
  }

  /** The tool-call format of this server: --tool-call-parser, or the one the model family writes. */
  get toolCallParser(): ToolCallParser {
    if (!this.parser) {
      const info = this.engine.info;
      const raw = (this.engine.config as ModelConfig | undefined)?.raw;
      const textConfig = raw?.text_config as { model_type?: unknown } | undefined;
      const textType = typeof textConfig?.model_type === 'string' ? textConfig.model_type : undefined;
      this.parser = toolCallParser(this.opts.toolCallParser ?? defaultToolCallParser(info.architecture, info.modelType, textType));
    }
    return this.parser;
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Takes a slot for a generation request, or refuses with 503 when full or shutting down. */
  admit(): { release(): void; controller: AbortController } {
    if (this.draining) throw new IrisError('the server is shutting down', { status: 503, type: 'ServiceUnavailableError' });
    if (this.inflight >= this.opts.maxConcurrentRequests) {
      throw Object.assign(new IrisError(`the server is at capacity (${this.inflight} requests in flight); retry shortly`, { status: 503, type: 'ServiceUnavailableError' }), { retryAfter: 1 });
    }
    this.inflight++;
    const controller = new AbortController();
    this.controllers.add(controller);
    let released = false;
    return {
      controller,
      release: () => {
        if (released) return;
        released = true;
        this.inflight--;
        this.controllers.delete(controller);
      },
    };
  }
}
