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
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { Engine } from '../src/engine/engine.js';
import { loadModelConfig } from '../src/models/config.js';
import { qwen2_5_vlVision } from '../src/models/qwen2_5_vl.js';
import { qwen2_vlVision } from '../src/models/qwen2_vl.js';
import { Qwen2VLModel } from '../src/models/qwen2vlModel.js';
import { buildQwenVisionGraph } from '../src/models/qwenVision.js';
import { decodeImage } from '../src/multimodal/decode.js';
import { PixelBufferPool } from '../src/multimodal/pixelBufferPool.js';
import { followParent, relaunchWithHugePages } from '../src/cli/hugePages.js';
import { loadQwen2VLProcessorConfig, preprocessQwen2VL } from '../src/multimodal/processors/qwen2vl.js';
import { GraphBuilder } from '../src/runtime/onnx/graph.js';
import { DataType } from '../src/runtime/onnx/model.js';
import { GraphSession } from '../src/runtime/session.js';
import { SessionWeights, WeightStore } from '../src/runtime/weights.js';
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
  const config = loadModelConfig(modelDir);
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
async function visionChild(modelDir: string, imagePath: string, runs: number): Promise<void> {
  const config = loadModelConfig(modelDir);
  const store = WeightStore.open(modelDir);
  const t0 = now();
  const spec = config.vision.kind === 'qwen2_5_vl' ? qwen2_5_vlVision : qwen2_vlVision;
  const prefix = store.has('model.visual.patch_embed.proj.weight') ? 'model.visual' : 'visual';
  const v = buildQwenVisionGraph(store, config.vision, spec, prefix);
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

// ---- main -------------------------------------------------------------------------------

/** A 1280x960 JPEG with structure at several scales (gradients, stripes, noise). */
async function makeJpeg(): Promise<Uint8Array> {
  const raw = Buffer.alloc(IMAGE_W * IMAGE_H * 3);
  let s = 12345;
  for (let y = 0; y < IMAGE_H; y++) {
    for (let x = 0; x < IMAGE_W; x++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const o = (y * IMAGE_W + x) * 3;
      raw[o] = (x * 255) / (IMAGE_W - 1);
      raw[o + 1] = ((y >> 4) & 1 ? 200 : 40) + ((s >>> 24) & 15);
      raw[o + 2] = (Math.sin(x / 37) * Math.cos(y / 23) * 100 + 128) | 0;
    }
  }
  return new Uint8Array(await sharp(raw, { raw: { width: IMAGE_W, height: IMAGE_H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
}

/** Bytes one decode step must read: every text-decoder weight (float32) and the output matrix. */
function decodeStepBytes(dir: string): { weights: number; lmHead: number; kvPerToken: number } {
  const store = WeightStore.open(dir);
  const cfg = loadModelConfig(dir).text;
  const numel = (n: string) => store.get(n).shape.reduce((a, b) => a * b, 1);
  let layers = 0;
  for (const n of store.names()) if (n.startsWith('model.layers.') || n === 'model.norm.weight') layers += numel(n);
  const head = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return { weights: layers * 4, lmHead: numel(head) * 4, kvPerToken: 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * 4 };
}

async function main(): Promise<void> {
  const dir = defaultCheckpointDir();
  const visionRuns = Number(process.env.IRIS_BENCH_VISION_RUNS ?? 1);
  const tStart = now();
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) log(`warning: the machine is busy (1-min load average ${loadBefore.toFixed(2)}); numbers will be low`);
  const ckpt = ensureCheckpoint(dir, log);
  log(ckpt.reused ? `reusing the checkpoint in ${dir}` : `checkpoint written in ${ckpt.seconds.toFixed(1)} s`);

  const jpeg = await makeJpeg();
  const jpegPath = join(dir, 'bench-1280x960.jpg');
  writeFileSync(jpegPath, jpeg);

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
  const engine = await Engine.load({ modelPath: dir, threads: THREADS, maxTotalTokens: 4096 });
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
    console.log(JSON.stringify(results));
  } finally {
    await engine.shutdown();
  }
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
  else if (args[0] === '--vision-child') await visionChild(args[1]!, args[2]!, Number(args[3] ?? 1));
  // Run as `iris serve` runs: with huge pages for malloc (the children inherit them).
  else if (!relaunchWithHugePages()) {
    followParent();
    await main();
  }
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
