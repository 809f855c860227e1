/** Metrics over a set of finished requests, as in sglang.bench_serving, and the server's own counters. */
import { RequestResult, Target, getJson } from './client.js';
import { Dist, dist, fmt, printBlock } from './util.js';

export interface ServerCounters {
  promptTokens: number;
  cachedPromptTokens: number;
  hitRate: number;
  visionHits: number;
  visionMisses: number;
  preemptions: number;
  kvUsage: number;
  kvTotalTokens: number;
  raw: any;
}

export async function serverCounters(t: Target): Promise<ServerCounters | null> {
  try {
    const s = await getJson(t, '/get_server_info');
    return {
      promptTokens: s.prefix_cache?.prompt_tokens ?? 0,
      cachedPromptTokens: s.prefix_cache?.cached_prompt_tokens ?? 0,
      hitRate: s.prefix_cache?.hit_rate ?? 0,
      visionHits: s.vision_cache?.hits ?? 0,
      visionMisses: s.vision_cache?.misses ?? 0,
      preemptions: s.preemptions ?? 0,
      kvUsage: s.kv_cache?.usage ?? 0,
      kvTotalTokens: s.kv_cache?.total_tokens ?? 0,
      raw: s,
    };
  } catch {
    return null;
  }
}

export interface ServerDelta {
  prompt_tokens: number;
  cached_prompt_tokens: number;
  /** Hit rate over this run only (difference of the counters before and after). */
  prefix_cache_hit_rate: number;
  /** The server's lifetime figure, as /get_server_info reports it. */
  prefix_cache_hit_rate_lifetime: number;
  vision_cache_hits: number;
  vision_cache_misses: number;
  preemptions: number;
  kv_cache_usage_end: number;
  kv_cache_total_tokens: number;
}

export function serverDelta(a: ServerCounters | null, b: ServerCounters | null): ServerDelta | null {
  if (!a || !b) return null;
  const p = b.promptTokens - a.promptTokens;
  const c = b.cachedPromptTokens - a.cachedPromptTokens;
  return {
    prompt_tokens: p,
    cached_prompt_tokens: c,
    prefix_cache_hit_rate: p ? c / p : 0,
    prefix_cache_hit_rate_lifetime: b.hitRate,
    vision_cache_hits: b.visionHits - a.visionHits,
    vision_cache_misses: b.visionMisses - a.visionMisses,
    preemptions: b.preemptions - a.preemptions,
    kv_cache_usage_end: b.kvUsage,
    kv_cache_total_tokens: b.kvTotalTokens,
  };
}

export interface BenchMetrics {
  completed: number;
  failed: number;
  duration_s: number;
  total_input_tokens: number;
  total_output_tokens: number;
  total_cached_tokens: number;
  request_throughput: number;
  input_throughput: number;
  output_throughput: number;
  total_throughput: number;
  /** Sum of end-to-end latencies over the duration: requests in flight on average. */
  concurrency: number;
  /** Sum of cached_tokens over sum of prompt_tokens (from each response's usage). */
  cache_hit_rate: number;
  ttft_ms: Dist;
  tpot_ms: Dist;
  itl_ms: Dist;
  e2e_ms: Dist;
  errors: string[];
}

/** Per-request TPOT: (e2e - ttft) / (output tokens - 1). */
export function tpot(r: RequestResult): number {
  return r.completionTokens > 1 ? (r.e2e - r.ttft) / (r.completionTokens - 1) : NaN;
}

export function computeMetrics(results: RequestResult[], durationS: number): BenchMetrics {
  const ok = results.filter((r) => r.ok);
  const input = ok.reduce((a, r) => a + r.promptTokens, 0);
  const output = ok.reduce((a, r) => a + r.completionTokens, 0);
  const cached = ok.reduce((a, r) => a + r.cachedTokens, 0);
  const errors = [...new Set(results.filter((r) => !r.ok).map((r) => r.error ?? 'unknown'))].slice(0, 5);
  return {
    completed: ok.length,
    failed: results.length - ok.length,
    duration_s: durationS,
    total_input_tokens: input,
    total_output_tokens: output,
    total_cached_tokens: cached,
    request_throughput: ok.length / durationS,
    input_throughput: input / durationS,
    output_throughput: output / durationS,
    total_throughput: (input + output) / durationS,
    concurrency: ok.reduce((a, r) => a + r.e2e, 0) / 1000 / durationS,
    cache_hit_rate: input ? cached / input : 0,
    ttft_ms: dist(ok.map((r) => r.ttft).filter(Number.isFinite)),
    tpot_ms: dist(ok.map(tpot).filter(Number.isFinite)),
    itl_ms: dist(ok.flatMap((r) => r.itl)),
    e2e_ms: dist(ok.map((r) => r.e2e)),
    errors,
  };
}

const distRows = (name: string, d: Dist): Array<[string, string]> => [
  [`Mean ${name} (ms)`, fmt(d.mean)],
  [`Median ${name} (ms)`, fmt(d.p50)],
  [`P90 ${name} (ms)`, fmt(d.p90)],
  [`P99 ${name} (ms)`, fmt(d.p99)],
];

export function printMetrics(m: BenchMetrics, head: Array<[string, string]>, server: ServerDelta | null): void {
  process.stdout.write(`\n${'='.repeat(12)} Serving Benchmark Result ${'='.repeat(12)}\n`);
  const w = 40;
  const line = ([a, v]: [string, string]) => process.stdout.write(`${(a + ':').padEnd(w + 2)}${v}\n`);
  [
    ...head,
    ['Successful requests', String(m.completed)],
    ['Failed requests', String(m.failed)],
    ['Benchmark duration (s)', fmt(m.duration_s)],
    ['Total input tokens', String(m.total_input_tokens)],
    ['Total generated tokens', String(m.total_output_tokens)],
    ['Request throughput (req/s)', fmt(m.request_throughput, 3)],
    ['Input token throughput (tok/s)', fmt(m.input_throughput)],
    ['Output token throughput (tok/s)', fmt(m.output_throughput)],
    ['Total token throughput (tok/s)', fmt(m.total_throughput)],
    ['Concurrency', fmt(m.concurrency)],
  ].forEach((r) => line(r as [string, string]));
  printBlock('End-to-End Latency', distRows('E2E Latency', m.e2e_ms), 50);
  printBlock('Time to First Token', distRows('TTFT', m.ttft_ms), 50);
  printBlock('Time per Output Token (excl. 1st token)', distRows('TPOT', m.tpot_ms), 50);
  printBlock('Inter-token Latency', distRows('ITL', m.itl_ms), 50);
  const cacheRows: Array<[string, string]> = [
    ['Cached prompt tokens (usage)', `${m.total_cached_tokens} / ${m.total_input_tokens}`],
    ['Prefix cache hit rate (usage)', `${fmt(m.cache_hit_rate * 100, 1)} %`],
  ];
  if (server) {
    cacheRows.push(
      ['Prefix cache hit rate (server, this run)', `${fmt(server.prefix_cache_hit_rate * 100, 1)} % (${server.cached_prompt_tokens} / ${server.prompt_tokens})`],
      ['Prefix cache hit rate (server, lifetime)', `${fmt(server.prefix_cache_hit_rate_lifetime * 100, 1)} %`],
      ['Vision cache hits / misses', `${server.vision_cache_hits} / ${server.vision_cache_misses}`],
      ['Preemptions', String(server.preemptions)],
      ['KV cache usage at end', `${fmt(server.kv_cache_usage_end * 100, 1)} % of ${server.kv_cache_total_tokens} tokens`],
    );
  }
  printBlock('Prefix Cache', cacheRows, 50);
  if (m.errors.length) printBlock('Errors', m.errors.map((e, i) => [`error ${i + 1}`, e]), 50);
  process.stdout.write(`${'='.repeat(50)}\n`);
}
