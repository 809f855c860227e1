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
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_IMAGE_MAX_TOKENS, Engine } from '../src/engine/engine.js';
import { QUANT_MODES, QuantMode } from '../src/engine/memoryPlan.js';
import { quantPolicies, sessionQuant } from '../src/runtime/quant/policy.js';
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
import {
  BandwidthResult,
  EngineChildResult,
  EngineChildSpec,
  IMAGE_H,
  IMAGE_W,
  REDUCE_ROWS,
  StepBytes,
  THREADS,
  autoPlan,
  cpuFlags,
  decodeFigures,
  gb,
  isError,
  log,
  makeJpeg,
  median,
  now,
  ok,
  peakRssBytes,
  pct,
  printRows,
  quantCached,
  ratio,
  reduceSumSession,
  runChild,
  runChildSafe,
  stepBytes,
} from './shared.js';

const SELF = fileURLToPath(import.meta.url);

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

// ---- main -------------------------------------------------------------------------------

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
  const vis = runChild<VisionChildResult>(['--vision-child', dir, jpegPath, String(visionRuns)], SELF);
  log('the decode kernel alone (child process)');
  const kernel = runChild<KernelChildResult>(['--kernel-child', dir], SELF);

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
  const visInt8 = runChildSafe<VisionChildResult>(['--vision-child', dir, imgVision, '1', 'int8'], SECONDS_2B_CHILD, SELF);
  log('vision tower alone, float32 linears (child process)');
  const visF32 = runChildSafe<VisionChildResult>(['--vision-child', dir, imgVision, '1', 'none'], SECONDS_2B_CHILD, SELF);

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
  // The bandwidth probes and the engine children run bench/shared.ts; these two run here.
  if (args[0] === '--kernel-child') await kernelChild(args[1]!);
  else if (args[0] === '--vision-child') await visionChild(args[1]!, args[2]!, Number(args[3] ?? 1), (args[4] ?? 'none') as 'none' | 'int8');
  // Run as `iris serve` runs: with huge pages for malloc (the children inherit them).
  else if (!relaunchWithHugePages()) {
    followParent();
    await main();
  }
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
