/**
 * What the decode benchmarks share: the machine's memory bandwidth (ORT and JS probes, in a
 * child process), the engine loaded in one quantization mode and measured (in a child
 * process), the bytes a decode step must read in each mode, the mode `--quantization auto`
 * would pick, and table printing. The children run this file: `node dist/bench/shared.js
 * --bandwidth-child [quick]` or `--engine-child SPEC`, each printing one JSON line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { Engine } from '../src/engine/engine.js';
import { kvBytesPerToken } from '../src/engine/kvPool.js';
import { QUANT_MODES, QuantMode, memoryFacts, planMemory } from '../src/engine/memoryPlan.js';
import { MllamaConfig } from '../src/models/mllama/config.js';
import { mllamaTileTokens } from '../src/models/mllama/vision.js';
import { kvLayers, loadModelConfig, modelGraphs, residentBytesByMode } from '../src/models/registry.js';
import { GraphBuilder } from '../src/runtime/onnx/graph.js';
import { DataType } from '../src/runtime/onnx/model.js';
import { quantPolicies } from '../src/runtime/quant/policy.js';
import { nbitsLayout } from '../src/runtime/quant/nbits.js';
import { GraphSession } from '../src/runtime/session.js';
import { WeightStore } from '../src/runtime/weightStore.js';

export const THREADS = 2;
export const GiB = 1 << 30;
/** This file, which the children run. */
const SHARED = fileURLToPath(import.meta.url);
export const IMAGE_W = 1280;
export const IMAGE_H = 960;

export const now = () => performance.now();
export const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
export const gb = (b: number) => b / 1e9;
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}


// ---- memory bandwidth (child process) -----------------------------------------------

export interface BandwidthResult {
  jsOneThreadGBs: number;
  jsTwoThreadsGBs: number;
  ortReduceSumGBs: number;
  ortMatVecGBs: number;
  bestGBs: number;
  runs: number;
}

/** Sums a Float32Array range with four accumulators (the loop V8 runs fastest). */
function sumRange(a: Float32Array, start: number, end: number): number {
  let x0 = 0, x1 = 0, x2 = 0, x3 = 0;
  let i = start;
  for (; i + 3 < end; i += 4) {
    x0 += a[i]!; x1 += a[i + 1]!; x2 += a[i + 2]!; x3 += a[i + 3]!;
  }
  for (; i < end; i++) x0 += a[i]!;
  return x0 + x1 + x2 + x3;
}

const SUM_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const a = new Float32Array(workerData.sab);
${sumRange.toString()}
parentPort.on('message', () => parentPort.postMessage(sumRange(a, workerData.start, workerData.end)));
parentPort.postMessage('ready');
`;

export const REDUCE_ROWS = 1024;

/** ORT ReduceSum over [REDUCE_ROWS, cols] along the columns: one partial sum per row, rows split over threads. */
export async function reduceSumSession(cols: number): Promise<GraphSession> {
  const g = new GraphBuilder('reduce');
  const x = g.input('x', DataType.FLOAT, [REDUCE_ROWS, cols]);
  g.output(g.op('ReduceSum', [x, g.constInt64([1])], { keepdims: 0 }), 'y', DataType.FLOAT, [REDUCE_ROWS]);
  return GraphSession.create(g, null, { intraOpThreads: THREADS });
}

/**
 * Bandwidth probes over 1 GiB. `quick` runs only the two ORT probes (the fastest readers here),
 * 3 times each: the probe taken right before each decode run.
 */
export async function bandwidthChild(quick: boolean): Promise<void> {
  const RUNS = quick ? 3 : 5;
  const n = GiB / 4;
  const sab = new SharedArrayBuffer(GiB);
  const data = new Float32Array(sab);
  for (let i = 0; i < n; i++) data[i] = (i & 1023) * 1e-3; // touch every page before timing
  const best = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);

  const js1: number[] = [];
  for (let r = 0; r < (quick ? 0 : RUNS); r++) {
    const t0 = now();
    sumRange(data, 0, n);
    js1.push(GiB / ((now() - t0) / 1000) / 1e9);
  }

  const workers = await Promise.all(
    Array.from({ length: quick ? 0 : THREADS }, (_, k) =>
      new Promise<Worker>((resolve) => {
        const w = new Worker(SUM_WORKER, { eval: true, workerData: { sab, start: (k * n) / THREADS, end: ((k + 1) * n) / THREADS } });
        w.once('message', () => resolve(w));
      }),
    ),
  );
  const js2: number[] = [];
  for (let r = 0; r < (quick ? 0 : RUNS); r++) {
    const t0 = now();
    await Promise.all(workers.map((w) => new Promise((resolve) => { w.once('message', resolve); w.postMessage('go'); })));
    js2.push(GiB / ((now() - t0) / 1000) / 1e9);
  }
  await Promise.all(workers.map((w) => w.terminate()));

  const plain = new Float32Array(n);
  plain.set(data);
  const rows = REDUCE_ROWS;
  const cols = n / rows;
  const reduce = await reduceSumSession(cols);
  const ortReduce: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const t0 = now();
    await reduce.run({ x: { data: plain, dims: [rows, cols] } });
    if (r > 0) ortReduce.push(GiB / ((now() - t0) / 1000) / 1e9);
  }
  await reduce.release();

  // ORT mat-vec: y[1, N] = x[1, K] @ W[K, N] with W a 1 GiB float32 input (what decode does per layer).
  const K = 16384;
  const N = n / K;
  const mg = new GraphBuilder('matvec');
  const mx = mg.input('x', DataType.FLOAT, [1, K]);
  const mw = mg.input('w', DataType.FLOAT, [K, N]);
  mg.output(mg.matmul(mx, mw), 'y', DataType.FLOAT, [1, N]);
  const matvec = await GraphSession.create(mg, null, { intraOpThreads: THREADS });
  const vec = new Float32Array(K).fill(0.5);
  const ortMatVec: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    const t0 = now();
    await matvec.run({ x: { data: vec, dims: [1, K] }, w: { data: plain, dims: [K, N] } });
    if (r > 0) ortMatVec.push(GiB / ((now() - t0) / 1000) / 1e9);
  }
  await matvec.release();

  const result: BandwidthResult = {
    jsOneThreadGBs: best(js1),
    jsTwoThreadsGBs: best(js2),
    ortReduceSumGBs: best(ortReduce),
    ortMatVecGBs: best(ortMatVec),
    bestGBs: 0,
    runs: RUNS,
  };
  result.bestGBs = Math.max(result.jsOneThreadGBs, result.jsTwoThreadsGBs, result.ortReduceSumGBs, result.ortMatVecGBs);
  process.stdout.write(JSON.stringify(result) + '\n');
}


/** Runs `script` (default: this file) as a child and parses its last stdout line as JSON. */
export function runChild<T>(args: string[], script = SHARED): T {
  const out = execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}


// ---- other processes on the machine ----------------------------------------------------

export interface CpuSample {
  /** Busy and total time of all CPUs, in clock ticks (/proc/stat). */
  busy: number;
  total: number;
  /** This process's CPU time (all its threads), microseconds. */
  ownMicros: number;
}

export function cpuSample(): CpuSample | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3]! + (f[4] ?? 0);
    const u = process.cpuUsage();
    return { busy: total - idle, total, ownMicros: u.user + u.system };
  } catch {
    return null; // not Linux
  }
}

/** The share of all CPUs' time between two samples that other processes used (null if unknown). */
export function othersShare(a: CpuSample | null, b: CpuSample | null): number | null {
  if (!a || !b || b.total <= a.total) return null;
  // /proc/stat counts USER_HZ (100) ticks per CPU.
  const own = ((b.ownMicros - a.ownMicros) / 1e6) * 100;
  return Math.max(0, (b.busy - a.busy - own) / (b.total - a.total));
}

/** Waits (up to `maxSeconds`) until other processes use less than a fifth of the CPUs over a second. */
export async function waitQuiet(maxSeconds: number): Promise<number | null> {
  const t0 = now();
  let share: number | null = null;
  while ((now() - t0) / 1000 < maxSeconds) {
    const a = cpuSample();
    await new Promise((r) => setTimeout(r, 1000));
    share = othersShare(a, cpuSample());
    if (share === null || share < 0.2) break;
  }
  if (share !== null && share >= 0.2) log(`  the machine stayed busy (others used ${pct(share)} of the CPUs); measuring anyway`);
  return share;
}

// ---- the engine in one quantization mode (child process) ----------------------------------

/** What one engine child loads and measures. */
export interface EngineChildSpec {
  dir: string;
  quantization: QuantMode | 'auto';
  /** KV cache size; undefined: the memory plan's default (as `iris serve` without flags). */
  maxTotalTokens?: number;
  /** Engine.load's imageMaxTokens (0: images at full size unless a request says otherwise). */
  imageMaxTokens?: number;
  /** Tokens of a text prompt prefilled alone (0: skip). */
  prefillTokens: number;
  /** Batch-1 decode runs, each after a bandwidth probe (0: skip). */
  decode1Runs: number;
  decode1Tokens: number;
  /** New tokens of each of 8 concurrent requests (0: skip). */
  decode8Tokens: number;
  /** Image prompts timed to their first token; maxTokens: the request's image token budget. */
  images: Array<{ label: string; path: string; maxTokens?: number }>;
  /** One chat message with an image and a question, answered end to end. */
  chat?: { path: string; maxNewTokens: number };
  /**
   * Batch-1 greedy decode with one image in a prompt given as token ids (holding the family's
   * image placeholder), each run followed by a bandwidth probe (the run's first token waits for
   * the vision tower, so the probe comes right after its decode steps instead of before).
   */
  imageDecode?: { path: string; inputIds: number[]; runs: number; tokens: number };
  /** Engine.load's visionCacheMb (so that repeated image runs can skip the vision tower). */
  visionCacheMb?: number;
  /**
   * Before each batch-1 decode run, wait up to this many seconds for the other processes on the
   * machine to leave the CPUs mostly idle (0 or absent: no wait). Each run records the share
   * of the CPUs other processes used while it ran.
   */
  quietSeconds?: number;
}

export interface ImageTtft {
  label: string;
  seconds: number;
  promptTokens: number;
  imageTokens: number;
  peakRssAfter: number;
}

export interface EngineChildResult {
  requested: QuantMode | 'auto';
  quantization: QuantMode;
  memoryPlan: string;
  loadSeconds: number;
  workerLoadSeconds: number;
  weightBytes: number;
  residentWeightBytes: number;
  kvTokens: number;
  rssBeforeLoad: number;
  /** The process's peak RSS once Engine.load returned (the load's peak). */
  peakRssAfterLoad: number;
  /** The process's RSS once Engine.load returned. */
  rssAfterLoad: number;
  prefill: { tokens: number; seconds: number[]; tokensPerSecond: number } | null;
  /** othersCpu: the share of the machine's CPUs other processes used during the run (when measured). */
  decode1: Array<{ perToken: number; tokens: number; probeGBs: number; avgContext: number; othersCpu?: number }>;
  decode8: { streams: number; tokensPerSecond: number; windowSeconds: number; tokensInWindow: number; lastFirstTokenSeconds: number; overallTokensPerSecond: number; overallSeconds: number } | null;
  peakRssAfterDecode: number;
  images: ImageTtft[];
  chat: { ttftSeconds: number; totalSeconds: number; promptTokens: number; completionTokens: number; text: string; finishReason: string } | null;
  /** The warm-up's greedy tokens of a text prompt and their logprobs (non-finite ones mean NaN or infinite logits). */
  warmup: { tokenIds: number[]; logprobs: number[] } | null;
  imageDecode: Array<{ perToken: number; tokens: number; probeGBs: number; avgContext: number; othersCpu?: number; ttftSeconds: number; promptTokens: number; tokenIds: number[]; logprobs: number[] }>;
  peakRssEnd: number;
  error?: string;
}

export const IMAGE_PROMPT = '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n';

/** Token ids of a text prompt, different for each `salt` (so the prefix cache never serves it). */
export const textPrompt = (n: number, salt: number) => Array.from({ length: n }, (_, i) => 100 + ((i * 37 + salt * 101 + ((i * salt) % 7)) % 180));

export async function engineChild(spec: EngineChildSpec): Promise<void> {
  const rssBeforeLoad = process.memoryUsage().rss;
  const t0 = now();
  const engine = await Engine.load({
    modelPath: spec.dir,
    threads: THREADS,
    quantization: spec.quantization,
    maxTotalTokens: spec.maxTotalTokens,
    imageMaxTokens: spec.imageMaxTokens,
    visionCacheMb: spec.visionCacheMb,
    onNotice: (l) => log(`  ${l}`),
  });
  const loadSeconds = (now() - t0) / 1000;
  const peakRssAfterLoad = peakRssBytes();
  const rssAfterLoad = process.memoryUsage().rss;
  log(`  loaded in ${loadSeconds.toFixed(1)} s (${engine.info.quantization}), peak RSS ${gb(peakRssAfterLoad).toFixed(2)} GB, RSS ${gb(rssAfterLoad).toFixed(2)} GB`);
  const r: EngineChildResult = {
    requested: spec.quantization,
    quantization: engine.info.quantization,
    memoryPlan: engine.info.memoryPlan,
    loadSeconds,
    workerLoadSeconds: engine.info.loadSeconds,
    weightBytes: engine.info.weightBytes,
    residentWeightBytes: engine.info.residentWeightBytes,
    kvTokens: engine.info.maxTotalTokens,
    rssBeforeLoad,
    peakRssAfterLoad,
    rssAfterLoad,
    prefill: null,
    decode1: [],
    decode8: null,
    peakRssAfterDecode: 0,
    images: [],
    chat: null,
    warmup: null,
    imageDecode: [],
    peakRssEnd: 0,
  };
  let salt = 1;
  const greedy = (maxNewTokens: number) => ({ temperature: 0, maxNewTokens, ignoreEos: true });
  try {
    if (spec.prefillTokens > 0 || spec.decode1Runs > 0 || spec.decode8Tokens > 0 || spec.imageDecode) {
      // Warm-up, with the chosen tokens' logprobs: finite ones say the logits are.
      const w = await engine.generate({ inputIds: textPrompt(32, salt++), sampling: { ...greedy(4), topLogprobs: 0 } });
      r.warmup = { tokenIds: w.tokenIds, logprobs: (w.logprobs ?? []).map((l) => l.logprob) };
      if (!r.warmup.logprobs.every(Number.isFinite)) log(`  warning: non-finite logprobs ${JSON.stringify(r.warmup.logprobs)}`);
    }
    if (spec.prefillTokens > 0) {
      log(`  prefill of a ${spec.prefillTokens}-token prompt`);
      const seconds: number[] = [];
      for (let k = 0; k < 2; k++) {
        const t1 = now();
        await engine.generate({ inputIds: textPrompt(spec.prefillTokens, salt++), sampling: greedy(1) });
        seconds.push((now() - t1) / 1000);
      }
      r.prefill = { tokens: spec.prefillTokens, seconds, tokensPerSecond: spec.prefillTokens / Math.min(...seconds) };
    }
    for (let k = 0; k < spec.decode1Runs; k++) {
      if (spec.quietSeconds) await waitQuiet(spec.quietSeconds);
      const probeGBs = runChild<BandwidthResult>(['--bandwidth-child', 'quick']).bestGBs;
      log(`  decode batch 1, run ${k + 1} (probe ${probeGBs.toFixed(1)} GB/s)`);
      const stamps: number[] = [];
      const c0 = cpuSample();
      for await (const c of engine.generateStream({ inputIds: textPrompt(32, salt++), sampling: greedy(spec.decode1Tokens) })) {
        for (let i = 0; i < c.tokenIds.length; i++) stamps.push(now());
      }
      const othersCpu = othersShare(c0, cpuSample()) ?? undefined;
      const perToken = (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1);
      r.decode1.push({ perToken, tokens: stamps.length, probeGBs, avgContext: 32 + spec.decode1Tokens / 2, othersCpu });
    }
    if (spec.decode8Tokens > 0) {
      log('  decode, 8 concurrent requests');
      const streams = 8;
      const stamps: number[][] = Array.from({ length: streams }, () => []);
      await Promise.all(
        stamps.map(async (mine) => {
          for await (const c of engine.generateStream({ inputIds: textPrompt(32, salt++), sampling: greedy(spec.decode8Tokens) })) {
            for (let i = 0; i < c.tokenIds.length; i++) mine.push(now());
          }
        }),
      );
      // Steady state: from the moment all 8 have their first token to the moment the first one ends.
      let start = Math.max(...stamps.map((x) => x[0]!));
      let end = Math.min(...stamps.map((x) => x[x.length - 1]!));
      // (A model so small that the first request ends before the last starts: all tokens after the first.)
      if (end <= start) [start, end] = [Math.min(...stamps.map((x) => x[0]!)), Math.max(...stamps.map((x) => x[x.length - 1]!))];
      const inWindow = stamps.reduce((a, x) => a + x.filter((t) => t > start && t <= end).length, 0);
      // Over the whole run as well: every token after each request's first, from the first
      // first token to the last token (lower when the requests' prefills are staggered).
      const first = Math.min(...stamps.map((x) => x[0]!));
      const last = Math.max(...stamps.map((x) => x[x.length - 1]!));
      const after = stamps.reduce((a, x) => a + x.length - 1, 0);
      r.decode8 = {
        streams,
        tokensPerSecond: inWindow / ((end - start) / 1000),
        windowSeconds: (end - start) / 1000,
        tokensInWindow: inWindow,
        lastFirstTokenSeconds: (start - first) / 1000,
        overallTokensPerSecond: after / ((last - first) / 1000),
        overallSeconds: (last - first) / 1000,
      };
    }
    r.peakRssAfterDecode = peakRssBytes();
    for (let k = 0; k < (spec.imageDecode?.runs ?? 0); k++) {
      const d = spec.imageDecode!;
      log(`  decode batch 1 with one image, run ${k + 1}`);
      const bytes = new Uint8Array(readFileSync(d.path));
      const stamps: number[] = [];
      const tokenIds: number[] = [];
      const logprobs: number[] = [];
      let promptTokens = 0;
      if (spec.quietSeconds) await waitQuiet(spec.quietSeconds);
      let c0: CpuSample | null = null;
      const t1 = now();
      // Each run a different prompt (so the prefix cache does not serve it); the chosen tokens' logprobs to check the logits.
      const ids = [...d.inputIds, ...textPrompt(4, salt++)];
      for await (const c of engine.generateStream({ inputIds: ids, images: [bytes], sampling: { ...greedy(d.tokens), topLogprobs: 0 } })) {
        for (let i = 0; i < c.tokenIds.length; i++) stamps.push(now());
        // Other processes' CPU from the first token on (the decode steps).
        if (!c0 && stamps.length) c0 = cpuSample();
        tokenIds.push(...c.tokenIds);
        logprobs.push(...(c.logprobs ?? []).map((l) => l.logprob));
        if (c.usage) promptTokens = c.usage.promptTokens;
      }
      const othersCpu = (c0 && othersShare(c0, cpuSample())) ?? undefined;
      const probeGBs = runChild<BandwidthResult>(['--bandwidth-child', 'quick']).bestGBs;
      const perToken = (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1);
      log(`  ${(1 / perToken).toFixed(2)} tok/s after a first token at ${((stamps[0]! - t1) / 1000).toFixed(1)} s (${promptTokens} prompt tokens; probe after ${probeGBs.toFixed(1)} GB/s)`);
      if (!logprobs.every(Number.isFinite)) log(`  warning: non-finite logprobs with the image`);
      r.imageDecode.push({ perToken, tokens: stamps.length, probeGBs, avgContext: promptTokens + d.tokens / 2, othersCpu, ttftSeconds: (stamps[0]! - t1) / 1000, promptTokens, tokenIds, logprobs });
    }
    for (const img of spec.images) {
      log(`  time to first token: ${img.label}`);
      const bytes = new Uint8Array(readFileSync(img.path));
      const t1 = now();
      const res = await engine.generate({
        prompt: IMAGE_PROMPT,
        images: [bytes],
        pixelBudget: img.maxTokens === undefined ? undefined : { maxTokens: img.maxTokens },
        sampling: { temperature: 0, maxNewTokens: 1 },
      });
      const seconds = (now() - t1) / 1000;
      const textTokens = engine.tokenizer.encode(IMAGE_PROMPT).length - 1;
      r.images.push({ label: img.label, seconds, promptTokens: res.usage.promptTokens, imageTokens: res.usage.promptTokens - textTokens, peakRssAfter: peakRssBytes() });
    }
    if (spec.chat) {
      log('  one image + text chat, end to end');
      const url = `data:image/jpeg;base64,${readFileSync(spec.chat.path).toString('base64')}`;
      const t1 = now();
      let first = 0;
      const chunks = engine.generateStream({
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'What is in this picture? Answer in one sentence.' }] }],
        sampling: { temperature: 0, maxNewTokens: spec.chat.maxNewTokens },
      });
      const res = await engine.collect(
        (async function* () {
          for await (const c of chunks) {
            if (!first && c.tokenIds.length) first = now();
            yield c;
          }
        })(),
      );
      r.chat = { ttftSeconds: (first - t1) / 1000, totalSeconds: (now() - t1) / 1000, promptTokens: res.usage.promptTokens, completionTokens: res.usage.completionTokens, text: res.text, finishReason: res.finishReason };
    }
  } catch (e) {
    r.error = (e as Error).message;
  } finally {
    r.peakRssEnd = peakRssBytes();
    await engine.shutdown();
  }
  process.stdout.write(JSON.stringify(r) + '\n');
}

/**
 * Runs a child and parses its last stdout line as JSON; a crash (an exception, out of memory,
 * a signal, the time limit) gives { error } instead of ending the benchmark.
 */
export function runChildSafe<T extends object>(args: string[], timeoutMinutes: number, script = SHARED): T | { error: string } {
  const t0 = now();
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 22, timeout: timeoutMinutes * 60_000, killSignal: 'SIGKILL' });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let parsed: any = null;
  try {
    parsed = JSON.parse(last);
  } catch {
    // no result line
  }
  if (r.status === 0 && parsed) return parsed as T;
  const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}${r.signal === 'SIGKILL' && (now() - t0) / 60_000 >= timeoutMinutes ? ` after the ${timeoutMinutes}-minute limit` : ' (out of memory?)'}` : `exit code ${r.status}`;
  return parsed?.error ? { ...parsed, error: `${parsed.error} (${why})` } : { error: `${why}; stdout: ${last.slice(0, 300)}` };
}

export const isError = (x: object): x is { error: string } => 'error' in x && typeof (x as any).error === 'string' && !('quantization' in x);


// ---- what a decode step reads, per mode -------------------------------------------------

export interface StepBytes {
  mode: QuantMode;
  /** engine.info.residentWeightBytes as the graphs size it: vision + text sessions. */
  residentBytes: number;
  visionBytes: number;
  textBytes: number;
  /** The embedding table when it is not also the output projection (only gathered rows are read). */
  embeddingTableBytes: number;
  /** One gathered embedding row. */
  embeddingRowBytes: number;
  /** Bytes of weights a batch-1 decode step reads: text session less the unread embedding table, plus one row. */
  perStep: number;
  kvBytesPerToken: number;
}

/**
 * From the graphs the engine builds (nothing is read): the text session's resident weights,
 * less the embedding table if it is not tied to the output projection (a decode step gathers
 * one row of it), plus that row. The vision session is not read while decoding.
 */
export function stepBytes(dir: string, mode: QuantMode): StepBytes {
  const config = loadModelConfig(dir);
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const { vision, text } = modelGraphs(store, config, { quantization: mode });
  const tc = config.text;
  const policy = quantPolicies(mode).text;
  let rowBytes = tc.hiddenSize * 4;
  if (policy?.embedBits) {
    const L = nbitsLayout(policy.embedBits, policy.blockSizes[policy.embedBits], tc.hiddenSize);
    rowBytes = L.rowBytes + L.kBlocks * 4;
  }
  // A float32 table is among the resident bytes (when tied it is also the head, read in full);
  // a quantized one is gathered row by row from the mapped file and is not.
  const table = tc.tieWordEmbeddings || policy?.embedBits ? 0 : rowBytes * (tc.embedRows ?? tc.vocabSize);
  return {
    mode,
    residentBytes: vision.w.residentBytes + text.w.residentBytes,
    visionBytes: vision.w.residentBytes,
    textBytes: text.w.residentBytes,
    embeddingTableBytes: table,
    embeddingRowBytes: rowBytes,
    perStep: text.w.residentBytes - table + (tc.tieWordEmbeddings && !policy?.embedBits ? 0 : rowBytes),
    kvBytesPerToken: kvBytesPerToken(kvLayers(config)),
  };
}

/**
 * Bytes of one image's cross-attention K and V every decode step of a sequence with it reads
 * (Llama 3.2 Vision keeps them, float32, for all max_num_tiles tile slots; 0 for families
 * whose images are tokens in the KV cache).
 */
export function crossStateBytes(dir: string): number {
  const config = loadModelConfig(dir);
  const layers = config.text.crossAttentionLayers ?? [];
  if (!layers.length) return 0;
  const c = config as MllamaConfig;
  const { P } = mllamaTileTokens(c);
  return layers.length * 2 * c.vision.maxNumTiles * P * c.text.numKvHeads * c.text.headDim * 4;
}

/** The quantized-weight cache files a mode uses (none for float32), and whether each is complete. */
export function quantFiles(dir: string, mode: QuantMode): Array<{ path: string; bytes: number; cached: boolean }> {
  if (mode === 'none') return [];
  const config = loadModelConfig(dir);
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const { vision, text } = modelGraphs(store, config, { quantization: mode });
  return [vision.w.quantFile, text.w.quantFile].flatMap((f) => (f && !f.empty ? [{ path: f.path, bytes: f.bytes, cached: f.cached }] : []));
}

/** Whether a mode's quantized weights are in the cache already. */
export function quantCached(dir: string, mode: QuantMode): boolean {
  return quantFiles(dir, mode).every((f) => f.cached);
}

/** The mode `--quantization auto` picks now, with default flags (as the worker plans it). */
export function autoPlan(dir: string): { mode: QuantMode; summary: string } {
  const config = loadModelConfig(dir);
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const tc = config.text;
  const p = planMemory({
    residentBytes: residentBytesByMode(store, config, QUANT_MODES),
    kvBytesPerToken: kvBytesPerToken(kvLayers(config)),
    contextLength: tc.maxPositionEmbeddings,
    requested: 'auto',
    facts: memoryFacts(),
  });
  return { mode: p.mode, summary: p.summary };
}

export function cpuFlags(): { model: string; avx512_vnni: boolean; avx_vnni: boolean; avx2: boolean; amx_int8: boolean } {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux
  }
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  return { model: /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown', avx512_vnni: flags.has('avx512_vnni'), avx_vnni: flags.has('avx_vnni'), avx2: flags.has('avx2'), amx_int8: flags.has('amx_int8') };
}


/** A JPEG (default 1280x960) with structure at several scales (gradients, stripes, noise); `seed` varies the noise. */
export async function makeJpeg(width = IMAGE_W, height = IMAGE_H, seed = 12345): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const o = (y * width + x) * 3;
      raw[o] = (x * 255) / (width - 1);
      raw[o + 1] = ((y >> 4) & 1 ? 200 : 40) + ((s >>> 24) & 15);
      raw[o + 2] = (Math.sin(x / 37) * Math.cos(y / 23) * 100 + 128) | 0;
    }
  }
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
}


export const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
export const ratio = (x: number) => `${x.toFixed(2)}x`;
export const ok = (pass: boolean) => (pass ? 'met' : 'MISSED');

/** Decode figures of one child: best run, the fraction of bandwidth per run (against its own probe). */
export function decodeFigures(r: EngineChildResult, steps: StepBytes) {
  return runFigures(r.decode1, steps);
}

/**
 * Figures of decode runs: the best run's tokens/s, and per run the bytes a step reads (weights,
 * `extraBytes` such as an image's cross-attention K/V, and the KV cache at the run's average
 * context) over the step time, as a fraction of the run's own bandwidth probe (their median).
 */
export function runFigures(runs: Array<{ perToken: number; probeGBs: number; avgContext: number }>, steps: StepBytes, extraBytes = 0) {
  if (!runs.length) return null;
  const best = runs.reduce((a, b) => (b.perToken < a.perToken ? b : a));
  const bytes = (d: { avgContext: number }) => steps.perStep + extraBytes + d.avgContext * steps.kvBytesPerToken;
  const fractions = runs.map((d) => bytes(d) / 1e9 / d.perToken / d.probeGBs);
  return { tokensPerSecond: 1 / best.perToken, perToken: best.perToken, fractions, fraction: median(fractions), impliedGBs: (steps.perStep + extraBytes) / 1e9 / best.perToken, bytesPerStep: bytes(best) };
}

export function printRows(rows: Array<[string, string, string]>): void {
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(`${'measure'.padEnd(w0)}  ${'value'.padStart(w1)}  note`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ${'-'.repeat(40)}`);
  for (const [a, v, n] of rows) console.log(`${a.padEnd(w0)}  ${v.padStart(w1)}  ${n}`);
}

// `node dist/bench/shared.js --bandwidth-child [quick]` / `--engine-child SPEC`: the children.
if (process.argv[1] && resolve(process.argv[1]) === SHARED) {
  const args = process.argv.slice(2);
  try {
    if (args[0] === '--bandwidth-child') await bandwidthChild(args[1] === 'quick');
    else if (args[0] === '--engine-child') await engineChild(JSON.parse(args[1]!) as EngineChildSpec);
    else throw new Error(`unknown child ${args[0]}`);
  } catch (e) {
    console.error(e);
    process.exitCode = 1;
  }
}
