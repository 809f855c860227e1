/**
 * Decode benchmark on a random-weight checkpoint with the real Qwen2-VL-2B-Instruct
 * shapes (BF16 on disk, float32 in memory). Run with `npm run bench:decode`.
 *
 * Measures, in one run:
 *   - the machine's memory bandwidth (best of a few runs of: a JS read-reduction over
 *     1 GiB with 1 and 2 threads, ONNX Runtime ReduceSum over a 1 GiB tensor with 2
 *     threads, and an ORT float32 mat-vec over a 1 GiB matrix), in a child process;
 *   - Engine.load time, the weights' size (disk and float32) and the process's peak RSS;
 *   - batch-1 greedy decode tokens/s, the bytes each decode step must read, and the
 *     implied GB/s as a fraction of the bandwidth (each of 3 decode runs against ORT
 *     probes taken right before it, since the host's bandwidth drifts; the median is reported);
 *   - vision encoding time of a 1280x960 image: directly (the engine's own
 *     encodeImages code over a vision-only session, in a child process) and as
 *     a cross-check through the engine (image prompt minus a text prompt of equal length);
 *   - decode + Qwen2-VL preprocessing time of a 1280x960 JPEG.
 *
 * The checkpoint is written once to IRIS_BENCH_DIR (default ~/.cache/iris-bench/qwen2vl-2b-random)
 * and reused while its marker file matches.
 */
import { asQwen2VLConfig } from '../src/models/qwen2_vl/config.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { DEFAULT_IMAGE_MAX_TOKENS, Engine } from '../src/engine/engine.js';
import { QUANT_MODES, QuantMode, memoryFacts, planMemory } from '../src/engine/memoryPlan.js';
import { residentBytesByMode } from '../src/models/registry.js';
import { quantPolicies, sessionQuant } from '../src/runtime/quant/policy.js';
import { nbitsLayout } from '../src/runtime/quant/nbits.js';
import { loadModelConfig } from '../src/models/registry.js';
import { qwen2_5_vlVision } from '../src/models/qwen2_vl/qwen2_5VlBlocks.js';
import { qwen2_vlVision } from '../src/models/qwen2_vl/qwen2VlBlocks.js';
import { Qwen2VLModel } from '../src/models/qwen2_vl/model.js';
import { buildQwenVisionGraph } from '../src/models/qwen2_vl/vision.js';
import { decodeImage } from '../src/multimodal/decode.js';
import { PixelBufferPool } from '../src/multimodal/pixelBufferPool.js';
import { followParent, relaunchWithHugePages } from '../src/cli/hugePages.js';
import { loadQwen2VLProcessorConfig, preprocessQwen2VL } from '../src/models/qwen2_vl/imageProcessing.js';
import { GraphBuilder } from '../src/runtime/onnx/graph.js';
import { DataType } from '../src/runtime/onnx/model.js';
import { GraphSession } from '../src/runtime/session.js';
import { WeightStore } from '../src/runtime/weightStore.js';
import { SessionWeights } from '../src/runtime/sessionWeights.js';
import { defaultCheckpointDir, ensureCheckpoint } from './checkpoint.js';

const THREADS = 2;
const GiB = 1 << 30;
const SELF = fileURLToPath(import.meta.url);
const IMAGE_W = 1280;
const IMAGE_H = 960;

const now = () => performance.now();
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
const gb = (b: number) => b / 1e9;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

// ---- memory bandwidth (child process) -----------------------------------------------

interface BandwidthResult {
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

const REDUCE_ROWS = 1024;

/** ORT ReduceSum over [REDUCE_ROWS, cols] along the columns: one partial sum per row, rows split over threads. */
async function reduceSumSession(cols: number): Promise<GraphSession> {
  const g = new GraphBuilder('reduce');
  const x = g.input('x', DataType.FLOAT, [REDUCE_ROWS, cols]);
  g.output(g.op('ReduceSum', [x, g.constInt64([1])], { keepdims: 0 }), 'y', DataType.FLOAT, [REDUCE_ROWS]);
  return GraphSession.create(g, null, { intraOpThreads: THREADS });
}

/**
 * Bandwidth probes over 1 GiB. `quick` runs only the two ORT probes (the fastest readers here),
 * 3 times each: the probe taken right before each decode run.
 */
async function bandwidthChild(quick: boolean): Promise<void> {
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

// ---- the decode kernel alone (child process) ---------------------------------------------

interface KernelChildResult {
  weight: string;
  bytes: number;
  matVecGBs: number;
  reduceSumGBs: number;
}

/**
 * The ceiling ONNX Runtime's own kernel sets: the decoder's largest mat-vec (the output
 * projection, `linearNoBias` on the checkpoint weight, prepacked as in the engine) run alone,
 * against ReduceSum over as many bytes, in the same process and minute.
 */
async function kernelChild(modelDir: string): Promise<void> {
  const config = asQwen2VLConfig(loadModelConfig(modelDir));
  const store = WeightStore.open(modelDir);
  const name = store.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight';
  const { vocabSize: V, hiddenSize: Hd } = config.text;
  const g = new GraphBuilder('matvec');
  const w = new SessionWeights(store, g);
  const x = g.input('x', DataType.FLOAT, [1, Hd]);
  g.output(g.linearNoBias(x, w.weight(name, [V, Hd])), 'y', DataType.FLOAT, [1, V]);
  const mv = await GraphSession.create(g, w, { intraOpThreads: THREADS });
  const rows = REDUCE_ROWS;
  const n = Math.ceil((V * Hd) / rows) * rows;
  const big = new Float32Array(n).fill(0.5);
  const reduce = await reduceSumSession(n / rows);
  const vec = new Float32Array(Hd).fill(0.1);
  const mvTimes: number[] = [];
  const rTimes: number[] = [];
  for (let r = 0; r < 8; r++) {
    let t0 = now();
    await mv.run({ x: { data: vec, dims: [1, Hd] } });
    if (r > 1) mvTimes.push(now() - t0);
    t0 = now();
    await reduce.run({ x: { data: big, dims: [rows, n / rows] } });
    if (r > 1) rTimes.push(now() - t0);
  }
  const bytes = V * Hd * 4;
  const result: KernelChildResult = {
    weight: name,
    bytes,
    matVecGBs: bytes / (Math.min(...mvTimes) / 1000) / 1e9,
    reduceSumGBs: (n * 4) / (Math.min(...rTimes) / 1000) / 1e9,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

// ---- vision tower alone (child process) ---------------------------------------------

interface VisionChildResult {
  mode: 'none' | 'int8';
  /** int8: whether the quantized weights were in the cache already. */
  quantCachedBefore: boolean;
  /** Graph building and quantizing (if not cached), before the session is created. */
  quantizeSeconds: number;
  residentWeightBytes: number;
  loadSeconds: number;
  encodeSeconds: number[];
  patches: number;
  imageTokens: number;
  peakRssGB: number;
}

/**
 * Times the engine's own Qwen2VLModel.encodeImages (layout, feeds, ORT run, reordering)
 * over a session holding only the vision tower, so the text weights need not be loaded.
 */
async function visionChild(modelDir: string, imagePath: string, runs: number, mode: 'none' | 'int8' = 'none'): Promise<void> {
  const config = asQwen2VLConfig(loadModelConfig(modelDir));
  const store = WeightStore.open(modelDir);
  const t0 = now();
  const spec = config.vision.kind === 'qwen2_5_vl' ? qwen2_5_vlVision : qwen2_vlVision;
  const prefix = store.has('model.visual.patch_embed.proj.weight') ? 'model.visual' : 'visual';
  // int8: the vision linears as the engine holds them in its int8 and int4 modes (same cache file).
  const quant = mode === 'int8' ? sessionQuant(store, 'vision', quantPolicies('int8').vision) : null;
  const v = buildQwenVisionGraph(store, config.vision, spec, prefix, quant);
  const quantCachedBefore = !quant || quant.file.cached;
  await v.w.prepare(undefined, THREADS);
  const quantizeSeconds = (now() - t0) / 1000;
  const session = await GraphSession.create(v.g, v.w, { intraOpThreads: THREADS });
  const loadSeconds = (now() - t0) / 1000;
  // encodeImages only uses `config` and `vision`: borrow it without building the text graph.
  const model = Object.assign(Object.create(Qwen2VLModel.prototype), { config, vision: session }) as Qwen2VLModel;
  const img = await decodeImage(new Uint8Array(readFileSync(imagePath)));
  const pre = preprocessQwen2VL(img, loadQwen2VLProcessorConfig(modelDir));
  const encodeSeconds: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t1 = now();
    const [emb] = await model.encodeImages([{ pixelValues: pre.pixelValues, grid: pre.gridThw }]);
    encodeSeconds.push((now() - t1) / 1000);
    if (emb!.length !== pre.numImageTokens * config.text.hiddenSize) throw new Error('unexpected embedding size');
  }
  await session.release();
  const result: VisionChildResult = {
    mode,
    quantCachedBefore,
    quantizeSeconds,
    residentWeightBytes: v.w.residentBytes,
    loadSeconds,
    encodeSeconds,
    patches: pre.gridThw[0] * pre.gridThw[1] * pre.gridThw[2],
    imageTokens: pre.numImageTokens,
    peakRssGB: gb(peakRssBytes()),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

function runChild<T>(args: string[]): T {
  const out = execFileSync(process.execPath, [SELF, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

// ---- the engine in one quantization mode (child process) ----------------------------------

/** What one engine child loads and measures. */
interface EngineChildSpec {
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
}

interface ImageTtft {
  label: string;
  seconds: number;
  promptTokens: number;
  imageTokens: number;
  peakRssAfter: number;
}

interface EngineChildResult {
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
  decode1: Array<{ perToken: number; tokens: number; probeGBs: number; avgContext: number }>;
  decode8: { streams: number; tokensPerSecond: number; windowSeconds: number; tokensInWindow: number; lastFirstTokenSeconds: number; overallTokensPerSecond: number; overallSeconds: number } | null;
  peakRssAfterDecode: number;
  images: ImageTtft[];
  chat: { ttftSeconds: number; totalSeconds: number; promptTokens: number; completionTokens: number; text: string; finishReason: string } | null;
  peakRssEnd: number;
  error?: string;
}

const IMAGE_PROMPT = '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n';

/** Token ids of a text prompt, different for each `salt` (so the prefix cache never serves it). */
const textPrompt = (n: number, salt: number) => Array.from({ length: n }, (_, i) => 100 + ((i * 37 + salt * 101 + ((i * salt) % 7)) % 180));

async function engineChild(spec: EngineChildSpec): Promise<void> {
  const rssBeforeLoad = process.memoryUsage().rss;
  const t0 = now();
  const engine = await Engine.load({
    modelPath: spec.dir,
    threads: THREADS,
    quantization: spec.quantization,
    maxTotalTokens: spec.maxTotalTokens,
    imageMaxTokens: spec.imageMaxTokens,
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
    peakRssEnd: 0,
  };
  let salt = 1;
  const greedy = (maxNewTokens: number) => ({ temperature: 0, maxNewTokens, ignoreEos: true });
  try {
    if (spec.prefillTokens > 0 || spec.decode1Runs > 0 || spec.decode8Tokens > 0) {
      await engine.generate({ inputIds: textPrompt(32, salt++), sampling: greedy(4) }); // warm-up
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
      const probeGBs = runChild<BandwidthResult>(['--bandwidth-child', 'quick']).bestGBs;
      log(`  decode batch 1, run ${k + 1} (probe ${probeGBs.toFixed(1)} GB/s)`);
      const stamps: number[] = [];
      for await (const c of engine.generateStream({ inputIds: textPrompt(32, salt++), sampling: greedy(spec.decode1Tokens) })) {
        for (let i = 0; i < c.tokenIds.length; i++) stamps.push(now());
      }
      const perToken = (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1);
      r.decode1.push({ perToken, tokens: stamps.length, probeGBs, avgContext: 32 + spec.decode1Tokens / 2 });
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
function runChildSafe<T extends object>(args: string[], timeoutMinutes: number): T | { error: string } {
  const t0 = now();
  const r = spawnSync(process.execPath, [SELF, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 22, timeout: timeoutMinutes * 60_000, killSignal: 'SIGKILL' });
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

const isError = (x: object): x is { error: string } => 'error' in x && typeof (x as any).error === 'string' && !('quantization' in x);

// ---- what a decode step reads, per mode -------------------------------------------------

interface StepBytes {
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
function stepBytes(dir: string, mode: QuantMode): StepBytes {
  const config = asQwen2VLConfig(loadModelConfig(dir));
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const { vision, text } = Qwen2VLModel.graphs(store, config, { quantization: mode });
  const tc = config.text;
  const policy = quantPolicies(mode).text;
  let rowBytes = tc.hiddenSize * 4;
  if (policy?.embedBits) {
    const L = nbitsLayout(policy.embedBits, policy.blockSizes[policy.embedBits], tc.hiddenSize);
    rowBytes = L.rowBytes + L.kBlocks * 4;
  }
  // A float32 table is among the resident bytes (when tied it is also the head, read in full);
  // a quantized one is gathered row by row from the mapped file and is not.
  const table = tc.tieWordEmbeddings || policy?.embedBits ? 0 : rowBytes * tc.vocabSize;
  return {
    mode,
    residentBytes: vision.w.residentBytes + text.w.residentBytes,
    visionBytes: vision.w.residentBytes,
    textBytes: text.w.residentBytes,
    embeddingTableBytes: table,
    embeddingRowBytes: rowBytes,
    perStep: text.w.residentBytes - table + (tc.tieWordEmbeddings && !policy?.embedBits ? 0 : rowBytes),
    kvBytesPerToken: 2 * tc.numLayers * tc.numKvHeads * tc.headDim * 4,
  };
}

/** Whether a mode's quantized weights are in the cache already. */
function quantCached(dir: string, mode: QuantMode): boolean {
  if (mode === 'none') return true;
  const config = asQwen2VLConfig(loadModelConfig(dir));
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const { vision, text } = Qwen2VLModel.graphs(store, config, { quantization: mode });
  return [vision.w.quantFile, text.w.quantFile].every((f) => !f || f.empty || f.cached);
}

/** The mode `--quantization auto` picks now, with default flags (as the worker plans it). */
function autoPlan(dir: string): { mode: QuantMode; summary: string } {
  const config = asQwen2VLConfig(loadModelConfig(dir));
  const store = WeightStore.open(dir, config.raw.quantization_config);
  const tc = config.text;
  const p = planMemory({
    residentBytes: residentBytesByMode(store, config, QUANT_MODES),
    kvBytesPerToken: 2 * tc.numLayers * tc.numKvHeads * tc.headDim * 4,
    contextLength: tc.maxPositionEmbeddings,
    requested: 'auto',
    facts: memoryFacts(),
  });
  return { mode: p.mode, summary: p.summary };
}

function cpuFlags(): { model: string; avx512_vnni: boolean; avx_vnni: boolean; avx2: boolean; amx_int8: boolean } {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux
  }
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  return { model: /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown', avx512_vnni: flags.has('avx512_vnni'), avx_vnni: flags.has('avx_vnni'), avx2: flags.has('avx2'), amx_int8: flags.has('amx_int8') };
}

// ---- main -------------------------------------------------------------------------------

/** A JPEG (default 1280x960) with structure at several scales (gradients, stripes, noise); `seed` varies the noise. */
async function makeJpeg(width = IMAGE_W, height = IMAGE_H, seed = 12345): Promise<Uint8Array> {
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

/** Bytes one decode step must read: every text-decoder weight (float32) and the output matrix. */
function decodeStepBytes(dir: string): { weights: number; lmHead: number; kvPerToken: number } {
  const store = WeightStore.open(dir);
  const cfg = asQwen2VLConfig(loadModelConfig(dir)).text;
  const numel = (n: string) => store.get(n).shape.reduce((a, b) => a * b, 1);
  let layers = 0;
  for (const n of store.names()) if (n.startsWith('model.layers.') || n === 'model.norm.weight') layers += numel(n);
  const head = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return { weights: layers * 4, lmHead: numel(head) * 4, kvPerToken: 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * 4 };
}

/** The float32 measurements on the 2B-shape checkpoint; prints their table and returns them. */
async function baseBench(dir: string, ckpt: { reused: boolean; seconds: number }, jpeg: Uint8Array, jpegPath: string, tStart: number, loadBefore: number): Promise<any> {
  const visionRuns = Number(process.env.IRIS_BENCH_VISION_RUNS ?? 1);

  // Preprocessing (main thread, first: before the children, whose multi-GB exits leave the host
  // slow to hand out memory for a while, and before the model is loaded, so nothing else runs).
  const procCfg = loadQwen2VLProcessorConfig(dir);
  const decodeMs: number[] = [];
  const prepMs: number[] = [];
  const totalMs: number[] = [];
  // As in the engine: pixel buffers come from a pool the engine thread hands them back to.
  const pool = new PixelBufferPool(128 << 20);
  for (let r = 0; r < 12; r++) {
    const t0 = now();
    const img = await decodeImage(jpeg);
    const t1 = now();
    const { pixelValues } = preprocessQwen2VL(img, procCfg, {}, (n) => pool.take(n));
    const t2 = now();
    pool.give(pixelValues.buffer as ArrayBuffer);
    if (r >= 2) {
      decodeMs.push(t1 - t0);
      prepMs.push(t2 - t1);
      totalMs.push(t2 - t0);
    }
  }

  log('measuring memory bandwidth (child process)');
  const bw = runChild<BandwidthResult>(['--bandwidth-child']);
  log(`vision tower alone, ${visionRuns} run(s) (child process)`);
  const vis = runChild<VisionChildResult>(['--vision-child', dir, jpegPath, String(visionRuns)]);
  log('the decode kernel alone (child process)');
  const kernel = runChild<KernelChildResult>(['--kernel-child', dir]);

  log('Engine.load');
  const rssBeforeLoad = peakRssBytes();
  const tLoad = now();
  // Images at full size, so the cross-check below encodes the same 6,256 patches as the vision child.
  const engine = await Engine.load({ modelPath: dir, threads: THREADS, maxTotalTokens: 4096, quantization: 'none', imageMaxTokens: 0 });
  const loadSeconds = (now() - tLoad) / 1000;
  const rssAfterLoad = peakRssBytes();
  const fp32Bytes = engine.info.weightBytes * 2; // every weight is BF16 on disk, float32 in memory
  const step = decodeStepBytes(dir);

  try {
    // Decode: greedy, batch 1, a 32-token text prompt, 64 new tokens; time per token after the first.
    log('decode');
    const prompt = Array.from({ length: 32 }, (_, i) => 100 + ((i * 37) % 180));
    await engine.generate({ inputIds: prompt, sampling: { temperature: 0, maxNewTokens: 4, ignoreEos: true } }); // warm-up
    // The host's bandwidth drifts by tens of percent within minutes, so each decode run is
    // paired with a probe taken just before it and judged against that.
    const decodeRuns: Array<{ ttft: number; perToken: number; tokens: number; probeGBs: number; fraction: number }> = [];
    for (let r = 0; r < 3; r++) {
      const probeGBs = runChild<BandwidthResult>(['--bandwidth-child', 'quick']).bestGBs;
      const stamps: number[] = [];
      const t0 = now();
      for await (const c of engine.generateStream({ inputIds: prompt, sampling: { temperature: 0, maxNewTokens: 64, ignoreEos: true } })) {
        for (let k = 0; k < c.tokenIds.length; k++) stamps.push(now());
      }
      const perToken = (stamps[stamps.length - 1]! - stamps[0]!) / 1000 / (stamps.length - 1);
      const fraction = gb(step.weights + step.lmHead) / perToken / probeGBs;
      decodeRuns.push({ ttft: (stamps[0]! - t0) / 1000, perToken, tokens: stamps.length, probeGBs, fraction });
    }
    const bestDecode = decodeRuns.reduce((a, b) => (b.perToken < a.perToken ? b : a));
    const rssAfterDecode = peakRssBytes();
    const stepBytes = step.weights + step.lmHead;
    const impliedGBs = gb(stepBytes) / bestDecode.perToken;
    const avgContext = 32 + 64 / 2;

    // Vision through the engine: an image prompt (maxNewTokens 1) minus a text prompt of the same length.
    log('vision through the engine (image prompt vs text prompt of equal length)');
    const imagePrompt = '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n<|im_start|>assistant\n';
    const tPrep = now();
    const prepared = await engine.prepare({ prompt: imagePrompt, images: [jpeg], sampling: { temperature: 0, maxNewTokens: 1 } });
    const prepareSeconds = (now() - tPrep) / 1000;
    const promptLen = prepared.ids.length;
    const tImg = now();
    const rImg = await engine.generate({ prompt: imagePrompt, images: [jpeg], sampling: { temperature: 0, maxNewTokens: 1 } });
    const imageRequestSeconds = (now() - tImg) / 1000;
    const textIds = Array.from({ length: promptLen }, (_, i) => 100 + ((i * 53) % 180));
    const tTxt = now();
    await engine.generate({ inputIds: textIds, sampling: { temperature: 0, maxNewTokens: 1 } });
    const textRequestSeconds = (now() - tTxt) / 1000;
    const visionViaEngine = imageRequestSeconds - prepareSeconds - textRequestSeconds;
    if (rImg.usage.promptTokens !== promptLen) throw new Error(`prompt length ${rImg.usage.promptTokens} != ${promptLen}`);
    const rssEnd = peakRssBytes();

    const visionDirect = Math.min(...vis.encodeSeconds);
    const results = {
      machine: { threads: THREADS, loadAverageStart: loadBefore, loadAverageEnd: loadavg()[0]!, bandwidth: bw },
      checkpoint: { dir, reused: ckpt.reused, writeSeconds: ckpt.seconds, diskBytes: engine.info.weightBytes },
      load: {
        seconds: loadSeconds,
        workerLoadSeconds: engine.info.loadSeconds,
        weightBytesDisk: engine.info.weightBytes,
        weightBytesFp32: fp32Bytes,
        peakRssBeforeLoad: rssBeforeLoad,
        peakRssAfterLoad: rssAfterLoad,
        peakRssAfterDecode: rssAfterDecode,
        peakRssEnd: rssEnd,
        rssRatio: rssAfterDecode / fp32Bytes,
        rssRatioTarget: 1.3,
      },
      decode: {
        promptTokens: 32,
        newTokens: bestDecode.tokens,
        ttftSeconds: bestDecode.ttft,
        secondsPerToken: bestDecode.perToken,
        tokensPerSecond: 1 / bestDecode.perToken,
        runs: decodeRuns,
        bytesPerStep: stepBytes,
        textWeightBytes: step.weights,
        lmHeadBytes: step.lmHead,
        kvBytesPerStepAvg: step.kvPerToken * avgContext,
        impliedGBs,
        fractionOfBandwidth: median(decodeRuns.map((d) => d.fraction)),
        fractionOfStartBandwidth: impliedGBs / bw.bestGBs,
        target: 0.8,
      },
      kernel,
      vision: {
        image: `${IMAGE_W}x${IMAGE_H}`,
        patches: vis.patches,
        imageTokens: vis.imageTokens,
        directSeconds: visionDirect,
        directRuns: vis.encodeSeconds,
        directLoadSeconds: vis.loadSeconds,
        viaEngineSeconds: visionViaEngine,
        imageRequestSeconds,
        textRequestSeconds,
        prepareSeconds,
        promptTokens: promptLen,
      },
      preprocess: {
        decodeMsMedian: median(decodeMs),
        qwen2vlMsMedian: median(prepMs),
        totalMsMedian: median(totalMs),
        runs: totalMs.length,
        targetMs: 60,
      },
      totalSeconds: (now() - tStart) / 1000,
    };
    printTable(results);
    return results;
  } finally {
    await engine.shutdown();
  }
}

// ---- quantization modes on the 2B-shape checkpoint -------------------------------------------

interface ModeRun {
  mode: QuantMode;
  steps: StepBytes;
  /** Whether the mode's quantized weights were cached before this run. */
  cachedBefore: boolean;
  /** The load that quantized into the cache (when it was not cached), in its own child. */
  firstLoad: EngineChildResult | { error: string } | null;
  run: EngineChildResult | { error: string };
}

const SECONDS_2B_CHILD = 30;

async function modesBench(dir: string, modes: QuantMode[], bwStart: BandwidthResult | null): Promise<any> {
  const t0 = now();
  const cpu = cpuFlags();
  log(`CPU: ${cpu.model}; avx512_vnni ${cpu.avx512_vnni}, avx_vnni ${cpu.avx_vnni}, avx2 ${cpu.avx2}, amx_int8 ${cpu.amx_int8}`);
  const loadStart = loadavg()[0]!;
  const bw = bwStart ?? (log('measuring memory bandwidth (child process)'), runChild<BandwidthResult>(['--bandwidth-child']));
  // Distinct images, so no request finds another's embeddings or KV in a cache.
  const imgFull = join(dir, 'bench-1280x960-full.jpg');
  const imgBudget = join(dir, 'bench-1280x960-budget.jpg');
  const imgBig = join(dir, 'bench-4032x3024.jpg');
  const imgVision = join(dir, 'bench-1280x960.jpg');
  writeFileSync(imgFull, await makeJpeg(IMAGE_W, IMAGE_H, 1));
  writeFileSync(imgBudget, await makeJpeg(IMAGE_W, IMAGE_H, 2));
  writeFileSync(imgBig, await makeJpeg(4032, 3024, 3));
  if (!bwStart) writeFileSync(imgVision, await makeJpeg());
  const auto = autoPlan(dir);
  log(`--quantization auto would pick ${auto.mode} now: ${auto.summary}`);

  const runs: Partial<Record<QuantMode, ModeRun>> = {};
  for (const mode of modes) {
    const steps = stepBytes(dir, mode);
    const cachedBefore = quantCached(dir, mode);
    const base: EngineChildSpec = { dir, quantization: mode, maxTotalTokens: 4096, imageMaxTokens: 0, prefillTokens: 0, decode1Runs: 0, decode1Tokens: 0, decode8Tokens: 0, images: [] };
    let firstLoad: ModeRun['firstLoad'] = null;
    if (!cachedBefore) {
      log(`${mode}: first load, quantizing into the cache (child process)`);
      firstLoad = runChildSafe<EngineChildResult>(['--engine-child', JSON.stringify(base)], SECONDS_2B_CHILD);
      if (isError(firstLoad)) log(`${mode}: first load failed: ${firstLoad.error}`);
    }
    const images: EngineChildSpec['images'] = [
      { label: `${IMAGE_W}x${IMAGE_H}, full size (--image-max-tokens 0)`, path: imgFull },
      { label: `${IMAGE_W}x${IMAGE_H}, default budget (${DEFAULT_IMAGE_MAX_TOKENS} tokens)`, path: imgBudget, maxTokens: DEFAULT_IMAGE_MAX_TOKENS },
    ];
    if (mode === auto.mode) images.push({ label: `4032x3024 JPEG, default budget (${DEFAULT_IMAGE_MAX_TOKENS} tokens)`, path: imgBig, maxTokens: DEFAULT_IMAGE_MAX_TOKENS });
    log(`${mode}: load, prefill, decode batch 1 and 8, image prompts (child process)`);
    const run = runChildSafe<EngineChildResult>(
      ['--engine-child', JSON.stringify({ ...base, prefillTokens: 512, decode1Runs: 2, decode1Tokens: 48, decode8Tokens: 64, images } satisfies EngineChildSpec)],
      SECONDS_2B_CHILD,
    );
    if (isError(run) || run.error) log(`${mode}: failed: ${run.error}`);
    runs[mode] = { mode, steps, cachedBefore, firstLoad, run };
  }

  // Vision tower alone with float32 and int8 linears, back to back (same image as the float32 bench).
  log('vision tower alone, int8 linears (child process)');
  const visInt8 = runChildSafe<VisionChildResult>(['--vision-child', dir, imgVision, '1', 'int8'], SECONDS_2B_CHILD);
  log('vision tower alone, float32 linears (child process)');
  const visF32 = runChildSafe<VisionChildResult>(['--vision-child', dir, imgVision, '1', 'none'], SECONDS_2B_CHILD);

  return {
    cpu,
    bandwidth: bw,
    autoPlan: auto,
    runs,
    vision: { float32: visF32, int8: visInt8 },
    loadAverageStart: loadStart,
    loadAverageEnd: loadavg()[0]!,
    totalSeconds: (now() - t0) / 1000,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
const ratio = (x: number) => `${x.toFixed(2)}x`;
const ok = (pass: boolean) => (pass ? 'met' : 'MISSED');

/** Decode figures of one child: best run, the fraction of bandwidth per run (against its own probe). */
function decodeFigures(r: EngineChildResult, steps: StepBytes) {
  if (!r.decode1.length) return null;
  const best = r.decode1.reduce((a, b) => (b.perToken < a.perToken ? b : a));
  const fractions = r.decode1.map((d) => (steps.perStep + d.avgContext * steps.kvBytesPerToken) / 1e9 / d.perToken / d.probeGBs);
  return { tokensPerSecond: 1 / best.perToken, perToken: best.perToken, fractions, fraction: median(fractions), impliedGBs: steps.perStep / 1e9 / best.perToken };
}

function printRows(rows: Array<[string, string, string]>): void {
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(`${'measure'.padEnd(w0)}  ${'value'.padStart(w1)}  note`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ${'-'.repeat(40)}`);
  for (const [a, v, n] of rows) console.log(`${a.padEnd(w0)}  ${v.padStart(w1)}  ${n}`);
}

function printModesTable(m: any): void {
  const rows: Array<[string, string, string]> = [];
  const add = (what: string, value: string, note = '') => rows.push([what, value, note]);
  const cpu = m.cpu as ReturnType<typeof cpuFlags>;
  const vnni = cpu.avx512_vnni || cpu.avx_vnni;
  add('CPU', cpu.model, `avx512_vnni ${cpu.avx512_vnni ? 'yes' : 'no'}, avx_vnni ${cpu.avx_vnni ? 'yes' : 'no'}, avx2 ${cpu.avx2 ? 'yes' : 'no'} (amx_int8 ${cpu.amx_int8 ? 'yes' : 'no'})`);
  add('memory bandwidth (limit at the start)', `${(m.bandwidth as BandwidthResult).bestGBs.toFixed(1)} GB/s`, 'best of the probes; each decode run also has its own probe right before it');
  add('--quantization auto (default flags) picks', m.autoPlan.mode, m.autoPlan.summary);
  const runs = m.runs as Record<QuantMode, ModeRun>;
  const good = (mode: QuantMode) => (runs[mode] && !isError(runs[mode].run) ? (runs[mode].run as EngineChildResult) : null);
  const f32 = good('none');
  const f32Decode = f32 ? decodeFigures(f32, runs.none.steps) : null;
  for (const mode of Object.keys(runs) as QuantMode[]) {
    const x = runs[mode];
    const name = mode === 'none' ? 'float32' : mode;
    if (x.firstLoad) {
      if (isError(x.firstLoad)) add(`[${name}] first load (quantizing)`, 'FAILED', x.firstLoad.error);
      else {
        const fl = x.firstLoad as EngineChildResult;
        add(`[${name}] first load (quantizing into the cache)`, `${fl.loadSeconds.toFixed(1)} s`, `peak RSS ${gb(fl.peakRssAfterLoad).toFixed(2)} GB, RSS after load ${gb(fl.rssAfterLoad).toFixed(2)} GB: peak/after-load ${ratio(fl.peakRssAfterLoad / fl.rssAfterLoad)}${mode !== 'none' ? ` (target <= 1.15x: ${ok(fl.peakRssAfterLoad / fl.rssAfterLoad <= 1.15)})` : ''}`);
      }
    }
    if (isError(x.run)) {
      add(`[${name}] run`, 'FAILED', x.run.error);
      continue;
    }
    const r = x.run as EngineChildResult;
    if (r.error) add(`[${name}] error`, 'FAILED', r.error);
    const loadRatio = r.peakRssAfterLoad / r.rssAfterLoad;
    add(`[${name}] Engine.load${x.cachedBefore || x.firstLoad ? (mode === 'none' ? '' : ' (from the cache)') : ''}`, `${r.loadSeconds.toFixed(1)} s`, `resident weights ${gb(r.residentWeightBytes).toFixed(2)} GB (engine.info; graphs say ${gb(x.steps.residentBytes).toFixed(2)} GB), KV ${r.kvTokens} tokens`);
    add(`[${name}] peak RSS / RSS after load`, ratio(loadRatio), `${gb(r.peakRssAfterLoad).toFixed(2)} GB / ${gb(r.rssAfterLoad).toFixed(2)} GB${mode !== 'none' ? ` (target <= 1.15x: ${ok(loadRatio <= 1.15)})` : ''}; peak after decode ${gb(r.peakRssAfterDecode).toFixed(2)} GB, at the end ${gb(r.peakRssEnd).toFixed(2)} GB`);
    if (r.prefill) {
      const vs = f32?.prefill ? r.prefill.tokensPerSecond / f32.prefill.tokensPerSecond : NaN;
      add(
        `[${name}] prefill, ${r.prefill.tokens}-token text prompt`,
        `${r.prefill.tokensPerSecond.toFixed(1)} tok/s`,
        `${Math.min(...r.prefill.seconds).toFixed(2)} s (runs ${r.prefill.seconds.map((t) => t.toFixed(2)).join(', ')} s)${mode !== 'none' ? `; ${ratio(vs)} float32${mode === 'int8' ? ` (target >= 1.5x on VNNI hosts: ${vnni ? ok(vs >= 1.5) : 'n/a, no VNNI'})` : ''}` : ''}`,
      );
    }
    const d = decodeFigures(r, x.steps);
    if (d) {
      const vs = f32Decode ? d.tokensPerSecond / f32Decode.tokensPerSecond : NaN;
      const target = mode === 'int8' ? 1.8 : mode === 'int4' ? 3 : 0;
      add(
        `[${name}] decode batch 1`,
        `${d.tokensPerSecond.toFixed(2)} tok/s`,
        `${(d.perToken * 1000).toFixed(0)} ms/token, best of ${r.decode1.length} x ${r.decode1[0]!.tokens} tokens${target ? `; ${ratio(vs)} float32 (target >= ${target}x: ${ok(vs >= target)})` : ''}`,
      );
      add(
        `[${name}] weights read per decode token`,
        `${gb(x.steps.perStep).toFixed(3)} GB`,
        `text session ${gb(x.steps.textBytes).toFixed(3)} GB${x.steps.embeddingTableBytes ? ` - embedding table ${gb(x.steps.embeddingTableBytes).toFixed(3)} GB + 1 row` : ' (tied: the table is the output projection)'}; vision ${gb(x.steps.visionBytes).toFixed(3)} GB not read; + KV ~${((r.decode1[0]!.avgContext * x.steps.kvBytesPerToken) / 1e6).toFixed(1)} MB`,
      );
      add(
        `[${name}] decode / bandwidth just before`,
        pct(d.fraction),
        `median of ${d.fractions.map(pct).join(', ')} (probes ${r.decode1.map((q) => q.probeGBs.toFixed(1)).join(', ')} GB/s); ${d.impliedGBs.toFixed(1)} GB/s implied${mode !== 'none' ? ` (target >= 70%: ${ok(d.fraction >= 0.7)})` : ''}`,
      );
    }
    if (r.decode8) {
      const b1 = d?.tokensPerSecond ?? NaN;
      const e8 = r.decode8;
      add(
        `[${name}] decode batch 8 (8 concurrent requests)`,
        `${e8.tokensPerSecond.toFixed(2)} tok/s`,
        `${ratio(e8.tokensPerSecond / b1)} batch 1; ${e8.tokensInWindow} tokens in ${e8.windowSeconds.toFixed(1)} s while all 8 ran (the last started ${e8.lastFirstTokenSeconds.toFixed(1)} s after the first); over the whole run ${e8.overallTokensPerSecond.toFixed(2)} tok/s (${ratio(e8.overallTokensPerSecond / b1)}) in ${e8.overallSeconds.toFixed(1)} s`,
      );
    }
    for (const im of r.images) {
      add(`[${name}] TTFT ${im.label}`, `${im.seconds.toFixed(2)} s`, `${im.imageTokens} image tokens, ${im.promptTokens} prompt tokens; peak RSS then ${gb(im.peakRssAfter).toFixed(2)} GB`);
    }
  }
  const vf = m.vision.float32;
  const vi = m.vision.int8;
  if (isError(vf) || isError(vi)) add('vision encode, float32 vs int8 linears', 'FAILED', `${vf.error ?? ''} ${vi.error ?? ''}`);
  else {
    const a = Math.min(...(vf as VisionChildResult).encodeSeconds);
    const b = Math.min(...(vi as VisionChildResult).encodeSeconds);
    add(`vision encode ${IMAGE_W}x${IMAGE_H}, float32 linears`, `${a.toFixed(2)} s`, `${(vf as VisionChildResult).patches} patches; weights ${gb((vf as VisionChildResult).residentWeightBytes).toFixed(2)} GB`);
    add(
      `vision encode ${IMAGE_W}x${IMAGE_H}, int8 linears`,
      `${b.toFixed(2)} s`,
      `${ratio(b / a)} float32 (target <= 0.6x: ${ok(b / a <= 0.6)}); weights ${gb((vi as VisionChildResult).residentWeightBytes).toFixed(2)} GB; ${(vi as VisionChildResult).quantCachedBefore ? 'cached' : `quantized in ${(vi as VisionChildResult).quantizeSeconds.toFixed(1)} s`}`,
    );
  }
  add('quantization modes wall time', `${m.totalSeconds.toFixed(0)} s`, '');
  add('machine load average (1 min)', `${m.loadAverageStart.toFixed(2)} / ${m.loadAverageEnd.toFixed(2)}`, 'at start / end of the modes; other processes on the machine skew every number');
  console.log('');
  console.log('Quantization modes, 2B shapes (Qwen2-VL-2B-Instruct, BF16 checkpoint)');
  printRows(rows);
}

// ---- the 7B-shape checkpoint (--7b) -------------------------------------------------------

async function main7b(): Promise<void> {
  const tStart = now();
  const dir = defaultCheckpointDir('7b');
  const loadStart = loadavg()[0]!;
  if (loadStart > 0.5) log(`warning: the machine is busy (1-min load average ${loadStart.toFixed(2)}); numbers will be low`);
  const ckpt = ensureCheckpoint(dir, log, '7b');
  log(ckpt.reused ? `reusing the checkpoint in ${dir}` : `checkpoint written in ${ckpt.seconds.toFixed(1)} s`);
  const cpu = cpuFlags();
  const jpegPath = join(dir, 'bench-1280x960.jpg');
  writeFileSync(jpegPath, await makeJpeg(IMAGE_W, IMAGE_H, 7));
  log('measuring memory bandwidth (child process)');
  const bw = runChild<BandwidthResult>(['--bandwidth-child']);
  const auto = autoPlan(dir);
  log(`--quantization auto would pick ${auto.mode} now: ${auto.summary}`);
  const runs: any[] = [];
  for (const q of ['auto', 'int4'] as const) {
    const mode = q === 'auto' ? auto.mode : q;
    const steps = stepBytes(dir, mode);
    const cachedBefore = quantCached(dir, mode);
    const spec: EngineChildSpec = { dir, quantization: q, prefillTokens: 0, decode1Runs: 0, decode1Tokens: 0, decode8Tokens: 0, images: [] };
    log(`7B --quantization ${q}: first load${cachedBefore ? ' (already cached)' : ' (quantizes)'}, decode batch 1${q === 'auto' ? ', an image + text chat' : ''} (child process)`);
    const first = runChildSafe<EngineChildResult>(
      ['--engine-child', JSON.stringify({ ...spec, decode1Runs: 1, decode1Tokens: 24, chat: q === 'auto' ? { path: jpegPath, maxNewTokens: 16 } : undefined } satisfies EngineChildSpec)],
      45,
    );
    if (isError(first) || first.error) log(`failed: ${first.error}`);
    log(`7B --quantization ${q}: second load, from the cache (child process)`);
    const second = runChildSafe<EngineChildResult>(['--engine-child', JSON.stringify(spec)], 30);
    if (isError(second) || second.error) log(`failed: ${second.error}`);
    runs.push({ requested: q, predictedMode: mode, steps, cachedBefore, first, second });
  }
  const results = { cpu, bandwidth: bw, checkpoint: { dir, reused: ckpt.reused, writeSeconds: ckpt.seconds }, autoPlan: auto, runs, loadAverageStart: loadStart, loadAverageEnd: loadavg()[0]!, totalSeconds: (now() - tStart) / 1000 };
  print7bTable(results);
  console.log(JSON.stringify(results));
}

function print7bTable(m: any): void {
  const rows: Array<[string, string, string]> = [];
  const add = (what: string, value: string, note = '') => rows.push([what, value, note]);
  const cpu = m.cpu as ReturnType<typeof cpuFlags>;
  add('CPU', cpu.model, `avx512_vnni ${cpu.avx512_vnni ? 'yes' : 'no'}, avx_vnni ${cpu.avx_vnni ? 'yes' : 'no'}, avx2 ${cpu.avx2 ? 'yes' : 'no'}`);
  add('memory bandwidth (limit at the start)', `${(m.bandwidth as BandwidthResult).bestGBs.toFixed(1)} GB/s`, '');
  add('checkpoint', m.checkpoint.reused ? 'reused' : `written in ${m.checkpoint.writeSeconds.toFixed(1)} s`, m.checkpoint.dir);
  add('auto, predicted before loading', m.autoPlan.mode, m.autoPlan.summary);
  for (const x of m.runs) {
    const name = `--quantization ${x.requested}`;
    for (const [which, r] of [['first load', x.first], ['second load', x.second]] as const) {
      if (isError(r)) {
        add(`[${name}] ${which}`, 'FAILED', r.error);
        continue;
      }
      const e = r as EngineChildResult;
      const quantizing = which === 'first load' && !x.cachedBefore;
      add(
        `[${name}] ${which}${quantizing ? ' (quantizes)' : ' (from the cache)'}`,
        `${e.loadSeconds.toFixed(1)} s`,
        `${e.quantization}, resident weights ${gb(e.residentWeightBytes).toFixed(2)} GB; peak RSS ${gb(e.peakRssAfterLoad).toFixed(2)} GB, RSS after load ${gb(e.rssAfterLoad).toFixed(2)} GB (${ratio(e.peakRssAfterLoad / e.rssAfterLoad)})`,
      );
      if (which === 'first load') add(`[${name}] memory plan`, e.quantization, e.memoryPlan);
      if (e.error) add(`[${name}] error`, 'FAILED', e.error);
      const d = decodeFigures(e, x.steps);
      if (d) {
        add(`[${name}] decode batch 1`, `${d.tokensPerSecond.toFixed(2)} tok/s`, `${(d.perToken * 1000).toFixed(0)} ms/token over ${e.decode1[0]!.tokens} tokens; reads ${gb(x.steps.perStep).toFixed(2)} GB/token: ${pct(d.fraction)} of ${e.decode1[0]!.probeGBs.toFixed(1)} GB/s probed just before`);
      }
      if (e.chat) {
        add(
          `[${name}] image + text chat`,
          `${e.chat.totalSeconds.toFixed(1)} s`,
          `TTFT ${e.chat.ttftSeconds.toFixed(1)} s, ${e.chat.promptTokens} prompt tokens, ${e.chat.completionTokens} tokens (${e.chat.finishReason}): ${JSON.stringify(e.chat.text.slice(0, 60))}`,
        );
      }
      if (which === 'first load') add(`[${name}] peak RSS through the run`, `${gb(e.peakRssEnd).toFixed(2)} GB`, '');
    }
  }
  add('wall time', `${m.totalSeconds.toFixed(0)} s`, '');
  add('machine load average (1 min)', `${m.loadAverageStart.toFixed(2)} / ${m.loadAverageEnd.toFixed(2)}`, 'at start / end; other processes on the machine skew every number');
  console.log('');
  console.log('7B shapes (Qwen2.5-VL-7B-Instruct, BF16 checkpoint, 5 shards)');
  printRows(rows);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--7b')) return main7b();
  const skipBase = argv.includes('--skip-base');
  const modesArg = argv.find((a) => a.startsWith('--modes='))?.slice('--modes='.length) ?? 'none,int8,int4';
  const modes = modesArg === '' ? [] : (modesArg.split(',') as QuantMode[]);
  for (const m of modes) if (!QUANT_MODES.includes(m)) throw new Error(`--modes: unknown mode ${m}`);
  const dir = defaultCheckpointDir();
  const tStart = now();
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) log(`warning: the machine is busy (1-min load average ${loadBefore.toFixed(2)}); numbers will be low`);
  const ckpt = ensureCheckpoint(dir, log);
  log(ckpt.reused ? `reusing the checkpoint in ${dir}` : `checkpoint written in ${ckpt.seconds.toFixed(1)} s`);
  const jpeg = await makeJpeg();
  const jpegPath = join(dir, 'bench-1280x960.jpg');
  writeFileSync(jpegPath, jpeg);
  const base = skipBase ? null : await baseBench(dir, ckpt, jpeg, jpegPath, tStart, loadBefore);
  const quant = modes.length ? await modesBench(dir, modes, base?.machine.bandwidth ?? null) : null;
  if (quant) printModesTable(quant);
  console.log(JSON.stringify({ ...(base ?? {}), quantModes: quant, totalSeconds: (now() - tStart) / 1000 }));
}

function printTable(r: any): void {
  const rows: Array<[string, string, string]> = [];
  const add = (what: string, value: string, note = '') => rows.push([what, value, note]);
  const b = r.machine.bandwidth as BandwidthResult;
  add('memory bandwidth, JS sum 1 thread', `${b.jsOneThreadGBs.toFixed(1)} GB/s`, `best of ${b.runs}, 1 GiB`);
  add('memory bandwidth, JS sum 2 threads', `${b.jsTwoThreadsGBs.toFixed(1)} GB/s`, `best of ${b.runs}, 1 GiB`);
  add('memory bandwidth, ORT ReduceSum 2 thr', `${b.ortReduceSumGBs.toFixed(1)} GB/s`, `best of ${b.runs}, 1 GiB`);
  add('memory bandwidth, ORT mat-vec 2 thr', `${b.ortMatVecGBs.toFixed(1)} GB/s`, `best of ${b.runs}, 1 GiB fp32 matrix`);
  add('memory bandwidth (measured limit)', `${b.bestGBs.toFixed(1)} GB/s`, 'best of the above');
  add('checkpoint', r.checkpoint.reused ? 'reused' : `written in ${r.checkpoint.writeSeconds.toFixed(1)} s`, r.checkpoint.dir);
  add('Engine.load', `${r.load.seconds.toFixed(1)} s`, `worker reports ${r.load.workerLoadSeconds.toFixed(1)} s`);
  add('weights on disk (BF16)', `${gb(r.load.weightBytesDisk).toFixed(2)} GB`, 'engine.info.weightBytes');
  add('weights in memory (fp32)', `${gb(r.load.weightBytesFp32).toFixed(2)} GB`, '2 x disk bytes');
  add('peak RSS after load', `${gb(r.load.peakRssAfterLoad).toFixed(2)} GB`, `${(r.load.peakRssAfterLoad / r.load.weightBytesFp32).toFixed(2)}x fp32 weights`);
  add('peak RSS after load + decode', `${gb(r.load.peakRssAfterDecode).toFixed(2)} GB`, `${r.load.rssRatio.toFixed(2)}x fp32 weights (target < ${r.load.rssRatioTarget}x)`);
  add('peak RSS incl. 1280x960 image prefill', `${gb(r.load.peakRssEnd).toFixed(2)} GB`, `${(r.load.peakRssEnd / r.load.weightBytesFp32).toFixed(2)}x (vision activations)`);
  add('decode tokens/s (batch 1, greedy)', `${r.decode.tokensPerSecond.toFixed(2)} tok/s`, `${(r.decode.secondsPerToken * 1000).toFixed(1)} ms/token after the first, ${r.decode.newTokens} tokens, best of ${r.decode.runs.length}`);
  add('time to first token (32-token prompt)', `${(r.decode.ttftSeconds * 1000).toFixed(0)} ms`, '');
  add('bytes read per decode step', `${gb(r.decode.bytesPerStep).toFixed(3)} GB`, `text layers ${gb(r.decode.textWeightBytes).toFixed(3)} + lm_head ${gb(r.decode.lmHeadBytes).toFixed(3)} (+ KV ~${(r.decode.kvBytesPerStepAvg / 1e6).toFixed(1)} MB)`);
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  add('implied decode bandwidth', `${r.decode.impliedGBs.toFixed(1)} GB/s`, `best run; ${pct(r.decode.fractionOfStartBandwidth)} of the limit measured at the start`);
  add(
    'decode / bandwidth just before',
    pct(r.decode.fractionOfBandwidth),
    `median of ${r.decode.runs.length} runs, each over a probe taken right before it (${r.decode.runs.map((d: any) => `${pct(d.fraction)} of ${d.probeGBs.toFixed(1)}`).join(', ')} GB/s); target >= ${pct(r.decode.target)}`,
  );
  const k = r.kernel as KernelChildResult;
  add(
    'ORT mat-vec kernel alone / ReduceSum',
    pct(k.matVecGBs / k.reduceSumGBs),
    `${k.weight} (${(k.bytes / 1e9).toFixed(2)} GB, prepacked as in the engine) ${k.matVecGBs.toFixed(1)} GB/s vs ReduceSum ${k.reduceSumGBs.toFixed(1)} GB/s: the runtime kernel's own ceiling`,
  );
  add(`vision encode ${r.vision.image}, direct`, `${r.vision.directSeconds.toFixed(2)} s`, `${r.vision.patches} patches -> ${r.vision.imageTokens} tokens; engine's encodeImages on a vision-only session`);
  add(`vision encode ${r.vision.image}, via engine`, `${r.vision.viaEngineSeconds.toFixed(2)} s`, `image request ${r.vision.imageRequestSeconds.toFixed(2)} - prepare ${r.vision.prepareSeconds.toFixed(2)} - text prefill ${r.vision.textRequestSeconds.toFixed(2)} (${r.vision.promptTokens} tokens)`);
  add('JPEG decode 1280x960', `${r.preprocess.decodeMsMedian.toFixed(1)} ms`, `median of ${r.preprocess.runs}`);
  add('Qwen2-VL preprocess 1280x960', `${r.preprocess.qwen2vlMsMedian.toFixed(1)} ms`, `median of ${r.preprocess.runs}`);
  add('decode + preprocess', `${r.preprocess.totalMsMedian.toFixed(1)} ms`, `target < ${r.preprocess.targetMs} ms`);
  add('benchmark wall time', `${r.totalSeconds.toFixed(0)} s`, '');
  add('huge pages for malloc', process.env.GLIBC_TUNABLES?.includes('glibc.malloc.hugetlb=1') ? 'on' : 'off', 'as iris serve runs (IRIS_HUGE_PAGES=0 turns them off)');
  add('machine load average (1 min)', `${r.machine.loadAverageStart.toFixed(2)} / ${r.machine.loadAverageEnd.toFixed(2)}`, 'at start / end; other processes on the machine skew every number');
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  console.log(`${'measure'.padEnd(w0)}  ${'value'.padStart(w1)}  note`);
  console.log(`${'-'.repeat(w0)}  ${'-'.repeat(w1)}  ${'-'.repeat(40)}`);
  for (const [a, v, n] of rows) console.log(`${a.padEnd(w0)}  ${v.padStart(w1)}  ${n}`);
}

const args = process.argv.slice(2);
try {
  if (args[0] === '--bandwidth-child') await bandwidthChild(args[1] === 'quick');
  else if (args[0] === '--kernel-child') await kernelChild(args[1]!);
  else if (args[0] === '--vision-child') await visionChild(args[1]!, args[2]!, Number(args[3] ?? 1), (args[4] ?? 'none') as 'none' | 'int8');
  else if (args[0] === '--engine-child') await engineChild(JSON.parse(args[1]!) as EngineChildSpec);
  // Run as `iris serve` runs: with huge pages for malloc (the children inherit them).
  else if (!relaunchWithHugePages()) {
    followParent();
    await main();
  }
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
