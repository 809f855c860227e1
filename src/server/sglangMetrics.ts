import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { kvUsageRatio, prefixHitRate, type EngineStats } from '../engine/messages.js';

/**
 * The metrics SGLang exports, under its names and its `model_name` label, so that dashboards and
 * the Gateway API Inference Extension's endpoint picker (which reads `sglang:num_queue_reqs`,
 * `sglang:num_running_reqs` and `sglang:token_usage`) work unchanged. Gauges are set, not
 * accumulated: each scrape reads the engine's state at that moment.
 */
export const SGLANG_METRIC_NAMES = [
  'sglang:num_running_reqs',
  'sglang:num_queue_reqs',
  'sglang:token_usage',
  'sglang:cache_hit_rate',
  'sglang:gen_throughput',
  'sglang:prompt_tokens_total',
  'sglang:generation_tokens_total',
  'sglang:time_to_first_token_seconds',
  'sglang:inter_token_latency_seconds',
  'sglang:e2e_request_latency_seconds',
  'sglang:cache_config_info',
] as const;

/** Generated tokens per second are averaged over this window, so the gauge falls to 0 at idle. */
const THROUGHPUT_WINDOW_MS = 5000;

export class SglangMetrics {
  private readonly labels: { model_name: string };
  private readonly running: Gauge<'model_name'>;
  private readonly queued: Gauge<'model_name'>;
  private readonly tokenUsage: Gauge<'model_name'>;
  private readonly cacheHitRate: Gauge<'model_name'>;
  private readonly genThroughput: Gauge<'model_name'>;
  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly ttft: Histogram<'model_name'>;
  private readonly itl: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  /** Value 1; the KV page size and page count are its labels, which the endpoint picker's prefix scorer reads. */
  private readonly cacheConfig: Gauge<'model_name' | 'page_size' | 'num_pages'>;
  /** Arrival times and sizes of recent token batches, oldest first. */
  private readonly recent: Array<{ at: number; tokens: number }> = [];

  constructor(registry: Registry, modelName: string) {
    this.labels = { model_name: modelName };
    const registers = [registry];
    const labelNames = ['model_name'] as const;
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
    this.running = gauge('sglang:num_running_reqs', 'The number of running requests');
    this.queued = gauge('sglang:num_queue_reqs', 'The number of requests in the waiting queue');
    this.tokenUsage = gauge('sglang:token_usage', 'The token usage (KV cache pages held by requests / all pages)');
    this.cacheHitRate = gauge('sglang:cache_hit_rate', 'The prefix cache hit rate (prompt tokens served from the cache / prompt tokens)');
    this.genThroughput = gauge('sglang:gen_throughput', 'The generate throughput (token/s, over the last 5 s)');
    this.promptTokens = new Counter({ name: 'sglang:prompt_tokens_total', help: 'Number of prefill tokens processed.', labelNames, registers });
    this.generationTokens = new Counter({ name: 'sglang:generation_tokens_total', help: 'Number of generation tokens processed.', labelNames, registers });
    // SGLang's bucket bounds, so its dashboards' quantiles read the same.
    this.ttft = new Histogram({
      name: 'sglang:time_to_first_token_seconds',
      help: 'Histogram of time to first token in seconds.',
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 15, 20, 25, 30],
      registers,
    });
    this.itl = new Histogram({
      name: 'sglang:inter_token_latency_seconds',
      help: 'Histogram of inter-token latency in seconds.',
      labelNames,
      buckets: [0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8],
      registers,
    });
    this.e2e = new Histogram({
      name: 'sglang:e2e_request_latency_seconds',
      help: 'Histogram of End-to-end request latency in seconds',
      labelNames,
      buckets: [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 800],
      registers,
    });
    this.cacheConfig = new Gauge({ name: 'sglang:cache_config_info', help: 'Information of the KV cache (page size and number of pages, as labels)', labelNames: ['model_name', 'page_size', 'num_pages'], registers });
    // Zero samples from the start: a scraper sees every series before the first request.
    for (const m of [this.running, this.queued, this.tokenUsage, this.cacheHitRate, this.genThroughput]) m.set(this.labels, 0);
    this.promptTokens.inc(this.labels, 0);
    this.generationTokens.inc(this.labels, 0);
    for (const h of [this.ttft, this.itl, this.e2e]) h.zero(this.labels);
  }

  firstToken(seconds: number): void {
    this.ttft.observe(this.labels, seconds);
  }

  interToken(seconds: number): void {
    this.itl.observe(this.labels, seconds);
  }

  tokens(count: number, now = performance.now()): void {
    this.generationTokens.inc(this.labels, count);
    this.recent.push({ at: now, tokens: count });
    this.forget(now);
  }

  private forget(now: number): void {
    while (this.recent.length && this.recent[0]!.at < now - THROUGHPUT_WINDOW_MS) this.recent.shift();
  }

  requestDone(seconds: number, promptTokens: number): void {
    this.e2e.observe(this.labels, seconds);
    this.promptTokens.inc(this.labels, promptTokens);
  }

  /** Sets the gauges from the engine's state at scrape time. */
  scrape(s: EngineStats, now = performance.now()): void {
    this.cacheConfig.reset();
    this.cacheConfig.set({ ...this.labels, page_size: String(s.pageSize), num_pages: String(s.totalPages) }, 1);
    this.running.set(this.labels, s.running);
    this.queued.set(this.labels, s.waiting);
    this.tokenUsage.set(this.labels, kvUsageRatio(s));
    this.cacheHitRate.set(this.labels, prefixHitRate(s));
    this.forget(now);
    const tokens = this.recent.reduce((sum, r) => sum + r.tokens, 0);
    this.genThroughput.set(this.labels, tokens / (THROUGHPUT_WINDOW_MS / 1000));
  }
}
