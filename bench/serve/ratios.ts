/**
 * `--scenario ratios`: three ratios measured in one run against one server, each with its target.
 *   1. decode tokens/s of 8 concurrent text requests vs one request alone (>= 3.5x);
 *   2. TTFT of an image request whose image and prompt prefix are cached vs the same kind of
 *      request with a fresh image (<= 0.2x);
 *   3. p99 inter-token latency of 4 decoding streams while a ~4,000-token prompt arrives vs
 *      the same streams alone (<= 2x).
 */
import { RequestResult, Target, streamChat } from './client.js';
import { ServerDelta, serverCounters, serverDelta, tpot } from './report.js';
import { Dist, Rng, dist, fmt, log, median, sleep } from './util.js';
import { ImageFormat, PromptMaker, content, makeImage } from './workload.js';
import { getJson } from './client.js';

export interface RatiosOptions {
  target: Target;
  prompts: PromptMaker;
  rng: Rng;
  logprobs: boolean;
  contextLength: number;
  /** Ratio 1 */
  batch: number;
  decodeInputLen: number;
  singleOutputLen: number;
  batchOutputLen: number;
  /** Ratio 2 */
  imageWidth: number;
  imageHeight: number;
  imageFormat: ImageFormat;
  ttftRuns: number;
  /** Ratio 3 */
  streams: number;
  streamOutputLen: number;
  longLen: number;
  /** Stream tokens each stream has before the long prompt is sent. */
  markTokens: number;
}

export interface RatioLine {
  name: string;
  value: number;
  target: string;
  pass: boolean;
  detail: Record<string, unknown>;
}

export interface RatiosResult {
  scenario: 'ratios';
  ratios: RatioLine[];
  server: ServerDelta | null;
  duration_s: number;
}

function check(r: RequestResult, what: string): void {
  if (!r.ok) throw new Error(`${what} failed: ${r.error}`);
}

/** Waits until the server has no running or queued request (an aborted one is reaped on the next step). */
async function waitIdle(t: Target, timeoutS = 600): Promise<void> {
  const end = performance.now() + timeoutS * 1000;
  while (performance.now() < end) {
    try {
      const s = await getJson(t, '/get_server_info');
      if ((s.num_running_reqs ?? 0) === 0 && (s.num_queued_reqs ?? 0) === 0) return;
    } catch {
      // retry
    }
    await sleep(200);
  }
  log('warning: the server did not become idle');
}

/** Tokens per second of decoding while every stream in `rs` is past its first token and none has finished. */
function steadyDecodeRate(rs: RequestResult[]): { rate: number; windowS: number; tokens: number; steps: number; overall: number } {
  const tA = Math.max(...rs.map((r) => r.chunkTimes[0]!));
  const tB = Math.min(...rs.map((r) => r.chunkTimes[r.chunkTimes.length - 1]!));
  let tokens = 0;
  for (const r of rs) r.chunkTimes.forEach((t, i) => (t > tA && t <= tB ? (tokens += r.chunkTokens[i]!) : 0));
  const overallTokens = rs.reduce((a, r) => a + r.completionTokens - 1, 0);
  const overallS = (Math.max(...rs.map((r) => r.start + r.e2e)) - Math.min(...rs.map((r) => r.start + r.ttft))) / 1000;
  const windowS = (tB - tA) / 1000;
  return { rate: windowS > 0 ? tokens / windowS : NaN, windowS, tokens, steps: tokens / rs.length, overall: overallTokens / overallS };
}

export async function runRatios(o: RatiosOptions): Promise<RatiosResult> {
  const t = o.target;
  const t0 = performance.now();
  const before = await serverCounters(t);
  const text = (n: number) => o.prompts.text(n);
  const req = (c: string | ReturnType<typeof content>, maxTokens: number, tag: string) => ({ content: c, maxTokens, logprobs: o.logprobs, ignoreEos: true, tag });

  // ---- warm-up: first runs of the text and vision graphs pay one-time costs -------------------
  log('warm-up: one text request and one image request (not measured)');
  const w1 = await streamChat(t, req(text(o.decodeInputLen), 4, 'warmup-text'));
  check(w1, 'warm-up text request');
  // Requests sent together reach the engine over a step or two, and the engine then prefills the
  // late ones in small chunks beside the early ones' decoding, so their starts spread over many steps.
  // To measure N streams decoding together, a "blocker" request (a prompt whose prefill takes ~1.5 s,
  // max_tokens 1) goes first: the N requests queue while it prefills and are all admitted and
  // prefilled in the next step, with no decoding beside them (full prefill budget).
  const msPerPromptToken = w1.ttft / Math.max(1, w1.promptTokens);
  const blockerLen = Math.round(Math.min(2000, o.contextLength / 2, Math.max(64, 1500 / msPerPromptToken)));
  const syncStart = async () => {
    const blocker = streamChat(t, req(text(blockerLen), 1, 'blocker'));
    await sleep(100);
    return { blocker };
  };
  const warmImg = await makeImage(o.rng.fork(999), o.imageWidth, o.imageHeight, o.imageFormat);
  check(await streamChat(t, req(content([warmImg], 'What is in this picture? ' + text(8)), 2, 'warmup-image')), 'warm-up image request');
  await waitIdle(t);

  const ratios: RatioLine[] = [];

  // ---- 1. decode throughput: B concurrent vs 1 ------------------------------------------------
  // The single-request rate is measured before and after the batch and averaged, so a drift in
  // the machine's speed during the batch (a shared host) biases the ratio less.
  const singles: RequestResult[] = [];
  const runSingle = async (when: string) => {
    log(`ratio 1: one request alone, ${when} (${o.decodeInputLen}-token prompt, ${o.singleOutputLen} tokens)`);
    const r = await streamChat(t, req(text(o.decodeInputLen), o.singleOutputLen, `single-${when}`));
    check(r, 'the single decode request');
    const rate = (r.completionTokens - 1) / ((r.e2e - r.ttft) / 1000);
    log(`  single: ${fmt(rate)} tok/s (TTFT ${fmt(r.ttft, 0)} ms, TPOT ${fmt(tpot(r), 1)} ms)`);
    singles.push(r);
    await waitIdle(t);
    return rate;
  };
  const singleRates = [await runSingle('before')];
  await waitIdle(t);
  log(`ratio 1: ${o.batch} concurrent requests (${o.batchOutputLen} tokens each)`);
  let done = 0;
  const { blocker: blocker1 } = await syncStart();
  const batch = await Promise.all(
    Array.from({ length: o.batch }, (_, i) =>
      streamChat(t, req(text(o.decodeInputLen), o.batchOutputLen, `batch-${i}`)).then((r) => {
        log(`  batch request ${++done}/${o.batch} done (TTFT ${fmt(r.ttft, 0)} ms)`);
        return r;
      }),
    ),
  );
  batch.forEach((r, i) => check(r, `batch request ${i}`));
  check(await blocker1, 'the blocker request');
  const steady = steadyDecodeRate(batch);
  singleRates.push(await runSingle('after'));
  const singleRate = (singleRates[0]! + singleRates[1]!) / 2;
  const single = singles[0]!;
  log(`  ${o.batch} concurrent: ${fmt(steady.rate)} tok/s over ${fmt(steady.windowS, 1)} s with all decoding (${steady.steps.toFixed(0)} steps); ${fmt(steady.overall)} tok/s first token to last`);
  ratios.push({
    name: `decode tok/s, ${o.batch} concurrent vs 1`,
    value: steady.rate / singleRate,
    target: '>= 3.5x',
    pass: steady.rate / singleRate >= 3.5,
    detail: {
      single_tok_s: singleRate,
      single_tok_s_before_after: singleRates,
      single_tpot_ms: singles.map(tpot),
      single_ttft_ms: single.ttft,
      batch_tok_s_all_decoding: steady.rate,
      batch_window_s: steady.windowS,
      batch_window_steps: steady.steps,
      blocker_prompt_tokens: blockerLen,
      batch_tok_s_first_to_last_token: steady.overall,
      batch_ttft_ms: dist(batch.map((r) => r.ttft)),
      batch_tpot_ms: dist(batch.map(tpot)),
      prompt_tokens: single.promptTokens,
    },
  });
  await waitIdle(t);

  // ---- 2. TTFT with the image and prefix cached vs a fresh image ---------------------------------
  const prefix = 'Look carefully at this picture and answer the question about it in a few words. Question: ';
  const cold: RequestResult[] = [];
  const warm: RequestResult[] = [];
  for (let k = 0; k < o.ttftRuns; k++) {
    const img = await makeImage(o.rng.fork(k), o.imageWidth, o.imageHeight, o.imageFormat);
    const a = await streamChat(t, req(content([img], prefix + text(8)), 1, `cold-${k}`));
    check(a, 'a cold image request');
    await waitIdle(t);
    const b = await streamChat(t, req(content([img], prefix + text(8)), 1, `warm-${k}`));
    check(b, 'a cached image request');
    await waitIdle(t);
    cold.push(a);
    warm.push(b);
    log(`ratio 2: run ${k + 1}/${o.ttftRuns}: cold TTFT ${fmt(a.ttft, 0)} ms (${a.cachedTokens}/${a.promptTokens} cached), cached TTFT ${fmt(b.ttft, 0)} ms (${b.cachedTokens}/${b.promptTokens} cached)`);
  }
  const coldMed = median(cold.map((r) => r.ttft));
  const warmMed = median(warm.map((r) => r.ttft));
  ratios.push({
    name: 'TTFT, image+prefix cached vs fresh image',
    value: warmMed / coldMed,
    target: '<= 0.2x',
    pass: warmMed / coldMed <= 0.2,
    detail: {
      image: `${o.imageWidth}x${o.imageHeight} ${o.imageFormat}`,
      cold_ttft_ms: cold.map((r) => r.ttft),
      cached_ttft_ms: warm.map((r) => r.ttft),
      cold_ttft_median_ms: coldMed,
      cached_ttft_median_ms: warmMed,
      prompt_tokens: warm[0]?.promptTokens,
      cold_cached_tokens: cold.map((r) => r.cachedTokens),
      cached_cached_tokens: warm.map((r) => r.cachedTokens),
      request_bytes: cold[0]?.requestBytes,
    },
  });

  // ---- 3. p99 ITL of running streams with and without a long prompt arriving ----------------------
  const longLen = Math.min(o.longLen, o.contextLength - 64);
  const longText = text(longLen);
  const phase = async (withLong: boolean) => {
    let markResolve!: (t: number) => void;
    const mark = new Promise<number>((r) => (markResolve = r));
    const counts = new Array<number>(o.streams).fill(0);
    const { blocker } = await syncStart();
    const running = Array.from({ length: o.streams }, (_, i) =>
      streamChat(t, req(text(o.decodeInputLen), o.streamOutputLen, `stream-${i}`), {
        onTokens: (r) => {
          counts[i] = r.chunkTimes.length;
          if (counts.every((c) => c >= o.markTokens)) markResolve(performance.now());
        },
      }),
    );
    let long: Promise<RequestResult> | null = null;
    const ctl = new AbortController();
    const tMark = await Promise.race([mark, Promise.all(running).then(() => NaN)]);
    if (withLong && Number.isFinite(tMark)) {
      log(`ratio 3: sending the ${longLen}-token prompt while ${o.streams} streams decode`);
      long = streamChat(t, req(longText, 1, 'long'), { signal: ctl.signal });
    }
    const rs = await Promise.all(running);
    rs.forEach((r, i) => check(r, `stream ${i}`));
    check(await blocker, 'the blocker request');
    // Stop the long prompt if it is still being prefilled: only the overlap is measured.
    let longFirst = NaN;
    let longResult: RequestResult | null = null;
    if (long) {
      const finishedEarly = await Promise.race([long.then(() => true), sleep(0).then(() => false)]);
      if (!finishedEarly) ctl.abort();
      longResult = await long;
      if (longResult.chunkTimes.length) longFirst = longResult.chunkTimes[0]!;
    }
    const tEnd = Math.min(...rs.map((r) => r.chunkTimes[r.chunkTimes.length - 1]!), Number.isFinite(longFirst) ? longFirst : Infinity);
    const gaps: number[] = [];
    for (const r of rs) for (let k = 1; k < r.chunkTimes.length; k++) if (r.chunkTimes[k]! > tMark && r.chunkTimes[k]! <= tEnd) gaps.push(r.chunkTimes[k]! - r.chunkTimes[k - 1]!);
    await waitIdle(t);
    return { gaps, d: dist(gaps), windowS: (tEnd - tMark) / 1000, long: longResult, longFinished: Number.isFinite(longFirst) };
  };
  log(`ratio 3: ${o.streams} streams alone (${o.streamOutputLen} tokens each)`);
  const base = await phase(false);
  log(`  alone: ITL p50 ${fmt(base.d.p50, 0)} ms, p99 ${fmt(base.d.p99, 0)} ms over ${base.d.n} gaps`);
  log(`ratio 3: ${o.streams} streams with a ${longLen}-token prompt arriving`);
  const loaded = await phase(true);
  log(`  with the long prompt: ITL p50 ${fmt(loaded.d.p50, 0)} ms, p99 ${fmt(loaded.d.p99, 0)} ms over ${loaded.d.n} gaps; long prompt ${loaded.longFinished ? `prefilled, TTFT ${fmt(loaded.long!.ttft, 0)} ms` : 'still prefilling when the streams ended (aborted)'}`);
  ratios.push({
    name: `p99 ITL, ${o.streams} streams + ${longLen}-token prompt vs alone`,
    value: loaded.d.p99 / base.d.p99,
    target: '<= 2x',
    pass: loaded.d.p99 / base.d.p99 <= 2,
    detail: {
      itl_alone_ms: base.d,
      itl_with_long_ms: loaded.d as Dist,
      window_alone_s: base.windowS,
      window_with_long_s: loaded.windowS,
      long_prompt_tokens_requested: longLen,
      long_prompt_finished_prefill_in_window: loaded.longFinished,
      long_prompt_ttft_ms: loaded.longFinished ? loaded.long!.ttft : null,
      long_prompt_tokens: loaded.long?.promptTokens || null,
    },
  });

  const after = await serverCounters(t);
  return { scenario: 'ratios', ratios, server: serverDelta(before, after), duration_s: (performance.now() - t0) / 1000 };
}

export function printRatios(r: RatiosResult): void {
  const out = (s: string) => process.stdout.write(s + '\n');
  out(`\n${'='.repeat(20)} Iris serving ratios ${'='.repeat(20)}`);
  const w = Math.max(...r.ratios.map((x) => x.name.length)) + 4;
  out(`${'ratio'.padEnd(w)}${'value'.padStart(9)}   ${'target'.padEnd(9)} result`);
  r.ratios.forEach((x, i) => out(`${`${i + 1}. ${x.name}`.padEnd(w)}${`${fmt(x.value, 3)}x`.padStart(9)}   ${x.target.padEnd(9)} ${!Number.isFinite(x.value) ? 'N/A (no samples)' : x.pass ? 'PASS' : 'FAIL'}`));
  const [a, b, c] = r.ratios;
  out('');
  if (a) {
    const d = a.detail as any;
    out(`1. single request: ${fmt(d.single_tok_s)} tok/s, mean of ${d.single_tok_s_before_after.map((x: number) => fmt(x)).join(' (before) and ')} (after) (TPOT ${d.single_tpot_ms.map((x: number) => fmt(x, 1)).join(' / ')} ms, TTFT ${fmt(d.single_ttft_ms, 0)} ms, ${d.prompt_tokens} prompt tokens)`);
    out(`   concurrent: ${fmt(d.batch_tok_s_all_decoding)} tok/s while all decode (${fmt(d.batch_window_s, 1)} s, ${Number(d.batch_window_steps).toFixed(0)} steps); ${fmt(d.batch_tok_s_first_to_last_token)} tok/s first token to last`);
    out(`   concurrent TTFT p50/max ${fmt(d.batch_ttft_ms.p50, 0)}/${fmt(d.batch_ttft_ms.max, 0)} ms, TPOT p50 ${fmt(d.batch_tpot_ms.p50, 1)} ms`);
  }
  if (b) {
    const d = b.detail as any;
    out(`2. ${d.image}, ${d.prompt_tokens} prompt tokens: cold TTFT median ${fmt(d.cold_ttft_median_ms, 0)} ms [${d.cold_ttft_ms.map((x: number) => x.toFixed(0)).join(', ')}], cached ${fmt(d.cached_ttft_median_ms, 0)} ms [${d.cached_ttft_ms.map((x: number) => x.toFixed(0)).join(', ')}]`);
    out(`   cached tokens: cold [${d.cold_cached_tokens.join(', ')}], cached [${d.cached_cached_tokens.join(', ')}]`);
  }
  if (c) {
    const d = c.detail as any;
    out(`3. ITL alone: p50 ${fmt(d.itl_alone_ms.p50, 0)} ms, p90 ${fmt(d.itl_alone_ms.p90, 0)} ms, p99 ${fmt(d.itl_alone_ms.p99, 0)} ms (${d.itl_alone_ms.n} gaps over ${fmt(d.window_alone_s, 1)} s)`);
    out(`   with the long prompt: p50 ${fmt(d.itl_with_long_ms.p50, 0)} ms, p90 ${fmt(d.itl_with_long_ms.p90, 0)} ms, p99 ${fmt(d.itl_with_long_ms.p99, 0)} ms (${d.itl_with_long_ms.n} gaps over ${fmt(d.window_with_long_s, 1)} s)`);
    out(`   long prompt: ${d.long_prompt_finished_prefill_in_window ? `prefilled within the window, TTFT ${fmt(d.long_prompt_ttft_ms, 0)} ms, ${d.long_prompt_tokens} prompt tokens` : 'still prefilling when the streams finished (then aborted)'}`);
  }
  if (r.server) out(`server: prefix cache hit rate this run ${fmt(r.server.prefix_cache_hit_rate * 100, 1)} % (${r.server.cached_prompt_tokens}/${r.server.prompt_tokens}), vision cache ${r.server.vision_cache_hits} hits / ${r.server.vision_cache_misses} misses, preemptions ${r.server.preemptions}`);
  out(`scenario wall time ${fmt(r.duration_s, 1)} s`);
}
