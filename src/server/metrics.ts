import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { kvUsageRatio, type EngineStats } from '../engine/messages.js';
import { SglangMetrics } from './sglangMetrics.js';

/** Prometheus metrics of the server (GET /metrics). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'iris_requests_total', help: 'Requests by route and HTTP status', labelNames: ['route', 'status'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'iris_prompt_tokens_total', help: 'Prompt tokens processed', registers: [this.registry] });
  readonly completionTokens = new Counter({ name: 'iris_generation_tokens_total', help: 'Completion tokens generated', registers: [this.registry] });
  readonly cachedTokens = new Counter({ name: 'iris_cached_tokens_total', help: 'Prompt tokens served from the prefix cache', registers: [this.registry] });
  readonly ttft = new Histogram({
    name: 'iris_time_to_first_token_seconds',
    help: 'Time from request arrival to the first token',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly itl = new Histogram({
    name: 'iris_inter_token_latency_seconds',
    help: 'Time between consecutive tokens of a request',
    buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
    registers: [this.registry],
  });
  readonly e2e = new Histogram({
    name: 'iris_e2e_request_latency_seconds',
    help: 'Time from request arrival to its last token',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly running = new Gauge({ name: 'iris_num_running_reqs', help: 'Requests running in the engine', registers: [this.registry] });
  readonly queued = new Gauge({ name: 'iris_num_queued_reqs', help: 'Requests waiting for the engine', registers: [this.registry] });
  readonly kvUsage = new Gauge({ name: 'iris_kv_cache_usage_ratio', help: 'Share of KV cache pages held by running requests', registers: [this.registry] });
  readonly kvCached = new Gauge({ name: 'iris_kv_cache_prefix_ratio', help: 'Share of KV cache pages held by the prefix cache', registers: [this.registry] });

  /** The same measurements under SGLang's names, for tools that read those. */
  readonly sglang: SglangMetrics;

  constructor(modelName: string) {
    collectDefaultMetrics({ register: this.registry, prefix: 'iris_process_' });
    this.sglang = new SglangMetrics(this.registry, modelName);
  }

  /** Sets the gauges from the engine's state at scrape time. */
  scrape(s: EngineStats): void {
    this.running.set(s.running);
    this.queued.set(s.waiting);
    this.kvUsage.set(kvUsageRatio(s));
    this.kvCached.set(s.totalPages ? s.cachedPages / s.totalPages : 0);
    this.sglang.scrape(s);
  }
}

/** Times one request's token stream into the latency histograms. */
export class RequestTimer {
  private readonly start = performance.now();
  private last = 0;
  private first = true;

  constructor(private readonly m: ServerMetrics) {}

  tokens(count: number): void {
    if (count <= 0) return;
    const now = performance.now();
    this.m.sglang.tokens(count, now);
    if (this.first) {
      const ttft = (now - this.start) / 1000;
      this.m.ttft.observe(ttft);
      this.m.sglang.firstToken(ttft);
      this.first = false;
    } else {
      // Tokens that arrive together share the gap since the previous batch.
      const gap = (now - this.last) / 1000 / count;
      for (let i = 0; i < count; i++) {
        this.m.itl.observe(gap);
        this.m.sglang.interToken(gap);
      }
    }
    this.last = now;
  }

  done(promptTokens: number, completionTokens: number, cachedTokens: number): void {
    const e2e = (performance.now() - this.start) / 1000;
    this.m.e2e.observe(e2e);
    this.m.sglang.requestDone(e2e, promptTokens);
    this.m.promptTokens.inc(promptTokens);
    this.m.completionTokens.inc(completionTokens);
    this.m.cachedTokens.inc(cachedTokens);
  }
}
