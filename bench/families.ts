/**
 * Decode benchmark of the Gemma 3 and Llama 3.2 Vision families at their smallest released
 * shapes (random weights), beside Qwen2-VL-2B. Run with `npm run bench:families`.
 *
 * For each checkpoint (written once under ~/.cache/iris-bench; bench/familyCheckpoints.ts):
 *   - google/gemma-3-4b-it shapes (BF16, 8.6 GB, 2 shards);
 *   - meta-llama/Llama-3.2-11B-Vision-Instruct shapes (BF16, 21.3 GB, 5 shards);
 *   - Qwen2-VL-2B-Instruct shapes (the `bench:decode` checkpoint), text only;
 * it loads the engine with default settings (`--quantization auto`: the mode the memory plan
 * picks, printed) and with int8 and int4 explicitly (a mode auto picked is not run twice), each
 * in its own child process (a mode whose quantized weights are not cached yet is first loaded
 * alone, to quantize them), and measures batch-1 greedy decode tokens/s of a short text prompt
 * (2 runs, each right after a bandwidth probe) and with one image in the prompt (2 runs, each
 * followed by a probe; the first encodes the image, the second finds it in the vision cache;
 * Gemma 3: an 896x896 image, 256 image tokens in the KV cache; Llama 3.2 Vision: a 560x560
 * image, one tile of 4, whose cross-attention K/V every decode step also reads). Before each
 * run it waits up to 20 s for the other processes on the machine to leave the CPUs mostly idle,
 * and records the share of the CPUs they used during the run. Then the bytes a decode step
 * reads (the text session's resident weights, less the embedding table when it is not the
 * output projection, plus a gathered row; plus the image's cross-attention K/V and the KV
 * cache) over the step time as a share of the probed bandwidth.
 *
 * Flags: --families=gemma3,mllama,qwen2vl (default all), --modes=auto,int8,int4 (default all),
 * --no-image (text decode only), --tokens=N (new tokens per decode run, default 24).
 * Quantized weights are cached under ~/.cache/iris/quantized; when the disk runs short the
 * caches this run made for checkpoints already measured are deleted to make room, and at the
 * end those of the Gemma 3 and Llama 3.2 Vision checkpoints are deleted if less than 15 GB is
 * free (--keep-caches keeps them).
 */
import { inactiveExpertBytes } from './familyCheckpoints.js';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { QUANT_MODES, QuantMode } from '../src/engine/memoryPlan.js';
import { followParent, relaunchWithHugePages } from '../src/cli/hugePages.js';
import { BenchCheckpoint, checkpointBytes, checkpointReady, defaultCheckpointDir, diskFreeBytes, ensureCheckpoint } from './checkpoint.js';
import {
  BandwidthResult,
  EngineChildResult,
  EngineChildSpec,
  StepBytes,
  autoPlan,
  cpuFlags,
  crossStateBytes,
  gb,
  isError,
  log,
  makeJpeg,
  now,
  pct,
  printRows,
  quantFiles,
  runChild,
  runChildSafe,
  runFigures,
  stepBytes,
} from './shared.js';

type FamilyKey = 'gemma3' | 'mllama' | 'qwen2vl' | 'deepseek';

interface FamilyBench {
  key: FamilyKey;
  name: string;
  checkpoint: BenchCheckpoint;
  shapes: string;
  /** The image run: a JPEG of this size and a prompt (token ids) with the family's image placeholder. */
  image: { width: number; height: number; inputIds: number[]; what: string } | null;
  /** Minutes a child may take (load, quantizing, decode runs, the image's vision tower). */
  childMinutes: number;
}

const range = (n: number, from: number) => Array.from({ length: n }, (_, i) => from + i);

const FAMILIES: FamilyBench[] = [
  {
    key: 'qwen2vl',
    name: 'Qwen2-VL-2B',
    checkpoint: '2b',
    shapes: '28 layers x 1536, vocab 151936 (tied)',
    image: null,
    childMinutes: 15,
  },
  {
    key: 'gemma3',
    name: 'Gemma 3 4B',
    checkpoint: 'gemma3-4b',
    shapes: '34 layers x 2560 (8 heads, 4 KV, head 256; 5 of 6 layers slide over 1024), vocab 262208 (tied); SigLIP 27 x 1152 at 896',
    // <bos><start_of_turn>user ... <start_of_image> ... <end_of_turn><start_of_turn>model: the processor writes the 256 image tokens.
    image: { width: 896, height: 896, inputIds: [2, 105, ...range(6, 1200), 255999, ...range(8, 1300), 106, 105, ...range(2, 1400)], what: '896x896, 256 image tokens' },
    childMinutes: 20,
  },
  {
    key: 'mllama',
    name: 'Llama 3.2 11B Vision',
    checkpoint: 'mllama-11b',
    shapes: '40 layers x 4096 (32 self-attention, 8 gated cross-attention; 32 heads, 8 KV), vocab 128256; vision 32 + 8 layers x 1280, 4 tiles of 560',
    // <|begin_of_text|><|start_header_id|>user<|end_header_id|> <|image|> ... <|eot_id|><|start_header_id|>assistant<|end_header_id|>
    image: { width: 560, height: 560, inputIds: [128000, 128006, 100, 128007, 128256, ...range(12, 120), 128009, 128006, 101, 128007], what: '560x560, 1 tile of 4' },
    childMinutes: 30,
  },
  {
    key: 'deepseek',
    name: 'DeepSeek-VL2 tiny',
    checkpoint: 'deepseek-vl2-tiny',
    shapes: '12 layers x 1280 (10 heads, MHA; layer 0 dense, then 64 routed experts of 896, 6 active, + 2 shared), vocab 129280; SigLIP-SO400M 27 x 1152 at 384',
    image: null,
    childMinutes: 25,
  },
];

/** Free-disk floor under which the families' quantized weights are deleted at the end. */
const KEEP_FREE_BYTES = 15e9;
const MARGIN_BYTES = 2e9;
/** Before each decode run, wait up to this long for other processes to leave the CPUs mostly idle. */
const QUIET_SECONDS = 20;

interface ModeResult {
  requested: QuantMode | 'auto';
  mode: QuantMode;
  steps: StepBytes;
  /** The load that quantized into the cache (when it was not cached), in its own child. */
  firstLoad: EngineChildResult | { error: string } | null;
  run: EngineChildResult | { error: string };
}

interface FamilyResult {
  key: FamilyKey;
  name: string;
  shapes: string;
  dir: string;
  checkpoint: { reused: boolean; seconds: number } | { error: string };
  autoPlan: { mode: QuantMode; summary: string } | null;
  crossBytes: number;
  imageWhat: string | null;
  modes: ModeResult[];
  deletedCaches: string[];
}

/** Cache files this run has used, per checkpoint dir (deleted when room is needed, never the ones in use). */
const usedCaches = new Map<string, Set<string>>();

function deleteCaches(dirs: string[], why: string): string[] {
  const gone: string[] = [];
  for (const d of dirs) {
    for (const path of usedCaches.get(d) ?? []) {
      rmSync(path, { force: true });
      rmSync(path.replace(/\.bin$/, '.json'), { force: true });
      gone.push(path);
    }
    usedCaches.delete(d);
  }
  if (gone.length) log(`deleted ${gone.length} quantized-weight cache file(s) (${why})`);
  return gone;
}

/** Frees room for `bytes` of quantized weights by deleting caches of checkpoints already measured. */
function makeRoom(bytes: number, current: string, result: FamilyResult[]): boolean {
  const free = () => diskFreeBytes(join(defaultCheckpointDir('2b'), '..')) ?? Infinity;
  if (free() >= bytes + MARGIN_BYTES) return true;
  for (const r of result) {
    if (r.dir === current || !usedCaches.has(r.dir)) continue;
    r.deletedCaches.push(...deleteCaches([r.dir], `room for ${(bytes / 1e9).toFixed(1)} GB of quantized weights`));
    if (free() >= bytes + MARGIN_BYTES) return true;
  }
  return free() >= bytes + MARGIN_BYTES;
}

async function benchFamily(f: FamilyBench, modes: Array<QuantMode | 'auto'>, opts: { image: boolean; tokens: number }, done: FamilyResult[]): Promise<FamilyResult> {
  const dir = defaultCheckpointDir(f.checkpoint);
  const res: FamilyResult = { key: f.key, name: f.name, shapes: f.shapes, dir, checkpoint: { reused: true, seconds: 0 }, autoPlan: null, crossBytes: 0, imageWhat: null, modes: [], deletedCaches: [] };
  done.push(res);
  if (!checkpointReady(dir, f.checkpoint)) {
    // Room for the checkpoint and, beside it, for its smallest quantized weights.
    const need = checkpointBytes(f.checkpoint);
    if (!makeRoom(need + need / 3.5, dir, done)) log(`the disk is short of room for ${f.name}; trying anyway`);
  }
  try {
    res.checkpoint = ensureCheckpoint(dir, log, f.checkpoint);
    log(res.checkpoint.reused ? `${f.name}: reusing the checkpoint in ${dir}` : `${f.name}: checkpoint written in ${res.checkpoint.seconds.toFixed(1)} s`);
  } catch (e) {
    res.checkpoint = { error: (e as Error).message };
    log(`${f.name}: ${(e as Error).message}`);
    return res;
  }
  res.autoPlan = autoPlan(dir);
  res.crossBytes = crossStateBytes(dir);
  log(`${f.name}: --quantization auto would pick ${res.autoPlan.mode} now: ${res.autoPlan.summary}`);
  let imagePath: string | null = null;
  if (opts.image && f.image) {
    imagePath = join(dir, `bench-${f.image.width}x${f.image.height}.jpg`);
    writeFileSync(imagePath, await makeJpeg(f.image.width, f.image.height, 5));
    res.imageWhat = f.image.what;
  }
  const ran = new Set<QuantMode>();
  for (const requested of modes) {
    const mode = requested === 'auto' ? res.autoPlan.mode : requested;
    if (requested !== 'auto' && modes.includes('auto') && mode === res.autoPlan.mode && ran.has(mode)) {
      log(`${f.name}: ${mode} is what auto picked: measured above`);
      continue;
    }
    const files = quantFiles(dir, mode);
    const missing = files.filter((x) => !x.cached).reduce((a, x) => a + x.bytes, 0);
    if (missing > 0 && !makeRoom(missing, dir, done)) log(`${f.name} ${mode}: ${(missing / 1e9).toFixed(1)} GB of quantized weights may not fit on the disk`);
    const set = usedCaches.get(dir) ?? new Set<string>();
    files.forEach((x) => set.add(x.path));
    usedCaches.set(dir, set);
    const spec: EngineChildSpec = {
      dir,
      quantization: requested,
      // Explicit modes with a small KV cache (as `--max-total-tokens 4096`), so that a mode the default plan would refuse still loads if its weights fit.
      maxTotalTokens: requested === 'auto' ? undefined : 4096,
      prefillTokens: 0,
      decode1Runs: 2,
      decode1Tokens: opts.tokens,
      decode8Tokens: 0,
      images: [],
      // Two image runs: the first encodes the image, the second finds it in the vision cache (made large enough for Llama 3.2 Vision's 0.4 GB of cross-attention states).
      imageDecode: imagePath ? { path: imagePath, inputIds: f.image!.inputIds, runs: 2, tokens: opts.tokens } : undefined,
      visionCacheMb: imagePath ? 1024 : undefined,
      quietSeconds: QUIET_SECONDS,
    };
    // A load that quantizes writes GBs; its write-back would slow the decode runs after it. So it
    // runs alone, the disk is synced, and the measured child loads from the cache.
    let firstLoad: ModeResult['firstLoad'] = null;
    if (missing > 0) {
      log(`${f.name}, --quantization ${requested}${requested === 'auto' ? ` (${mode})` : ''}: first load, quantizing into the cache (child process)`);
      firstLoad = runChildSafe<EngineChildResult>(['--engine-child', JSON.stringify({ ...spec, decode1Runs: 0, imageDecode: undefined })], f.childMinutes);
      if (isError(firstLoad)) log(`${f.name} ${requested}: first load failed: ${firstLoad.error}`);
      spawnSync('sync');
    }
    log(`${f.name}, --quantization ${requested}${requested === 'auto' ? ` (${mode})` : ''}: load, decode batch 1${imagePath ? ', with an image' : ''} (child process)`);
    const run = runChildSafe<EngineChildResult>(['--engine-child', JSON.stringify(spec)], f.childMinutes);
    if (isError(run) || run.error) log(`${f.name} ${requested}: failed: ${run.error}`);
    const steps = stepBytes(dir, isError(run) ? mode : run.quantization);
    // A MoE decode step reads only the chosen experts of each layer.
    if (f.key === 'deepseek') steps.perStep -= inactiveExpertBytes(isError(run) ? mode : run.quantization);
    res.modes.push({ requested, mode: isError(run) ? mode : run.quantization, steps, firstLoad, run });
    ran.add(isError(run) ? mode : run.quantization);
  }
  return res;
}

function finite(xs: number[] | undefined): string {
  if (!xs || !xs.length) return 'n/a';
  return xs.every(Number.isFinite) ? 'finite' : `NON-FINITE (${xs.filter((x) => !Number.isFinite(x)).length} of ${xs.length})`;
}

function printTables(m: any): void {
  const rows: Array<[string, string, string]> = [];
  const add = (what: string, value: string, note = '') => rows.push([what, value, note]);
  const cpu = m.cpu as ReturnType<typeof cpuFlags>;
  add('CPU', cpu.model, `avx512_vnni ${cpu.avx512_vnni ? 'yes' : 'no'}, avx_vnni ${cpu.avx_vnni ? 'yes' : 'no'}, avx2 ${cpu.avx2 ? 'yes' : 'no'}`);
  add('memory bandwidth (limit at the start)', `${(m.bandwidth as BandwidthResult).bestGBs.toFixed(1)} GB/s`, 'best of the probes; each decode run has its own probe');
  const summary: string[] = [];
  for (const r of m.families as FamilyResult[]) {
    if ('error' in r.checkpoint) {
      add(`[${r.name}] checkpoint`, 'FAILED', r.checkpoint.error);
      continue;
    }
    add(`[${r.name}] checkpoint`, r.checkpoint.reused ? 'reused' : `written in ${r.checkpoint.seconds.toFixed(0)} s`, `${r.dir}; ${r.shapes}`);
    if (r.autoPlan) add(`[${r.name}] auto, planned before loading`, r.autoPlan.mode, r.autoPlan.summary);
    for (const x of r.modes) {
      const name = `[${r.name}, ${x.requested === 'auto' ? `auto -> ${x.mode}` : x.requested}]`;
      if (isError(x.run)) {
        add(`${name} run`, 'FAILED', x.run.error);
        summary.push(`| ${r.name} | ${x.requested === 'auto' ? `auto (${x.mode})` : x.mode} | FAILED | | | |`);
        continue;
      }
      const e = x.run;
      if (e.error) add(`${name} error`, 'FAILED', e.error);
      if (x.firstLoad) {
        if (isError(x.firstLoad)) add(`${name} first load (quantizing)`, 'FAILED', x.firstLoad.error);
        else add(`${name} first load, quantizing into the cache`, `${x.firstLoad.loadSeconds.toFixed(1)} s`, `peak RSS ${gb(x.firstLoad.peakRssAfterLoad).toFixed(2)} GB`);
      }
      add(`${name} load`, `${e.loadSeconds.toFixed(1)} s`, `${x.mode === 'none' ? 'float32' : 'from the cache'}; resident weights ${gb(e.residentWeightBytes).toFixed(2)} GB, KV cache ${e.kvTokens} tokens; peak RSS ${gb(e.peakRssAfterLoad).toFixed(2)} GB`);
      if (x.requested === 'auto') add(`${name} memory plan`, e.quantization, e.memoryPlan);
      add(`${name} logits`, finite([...(e.warmup?.logprobs ?? []), ...e.imageDecode.flatMap((d) => d.logprobs)]), `warm-up tokens ${JSON.stringify(e.warmup?.tokenIds ?? [])}; chosen tokens' logprobs ${JSON.stringify((e.warmup?.logprobs ?? []).map((l) => Number(l.toFixed(2))))}`);
      const others = (runs: Array<{ othersCpu?: number }>) => (runs.some((q) => q.othersCpu !== undefined) ? `; other processes used ${runs.map((q) => (q.othersCpu === undefined ? '?' : pct(q.othersCpu))).join(', ')} of the CPUs` : '');
      const d = runFigures(e.decode1, x.steps);
      const mode = x.requested === 'auto' ? `auto (${x.mode})` : x.mode;
      if (d) {
        add(
          `${name} decode batch 1, text`,
          `${d.tokensPerSecond.toFixed(2)} tok/s`,
          `${(d.perToken * 1000).toFixed(0)} ms/step (best of ${e.decode1.length} x ${e.decode1[0]!.tokens} tokens); reads ${gb(d.bytesPerStep).toFixed(2)} GB/step (weights ${gb(x.steps.perStep).toFixed(2)} GB${x.steps.embeddingTableBytes ? `, embedding table ${gb(x.steps.embeddingTableBytes).toFixed(2)} GB not read` : ''}); ${d.impliedGBs.toFixed(1)} GB/s = ${pct(d.fraction)} of the probes (${e.decode1.map((q) => q.probeGBs.toFixed(1)).join(', ')} GB/s; per run ${d.fractions.map(pct).join(', ')})${others(e.decode1)}`,
        );
      }
      const di = runFigures(e.imageDecode, x.steps, r.crossBytes);
      if (di) {
        const im = e.imageDecode[0]!;
        add(
          `${name} decode batch 1, one image`,
          `${di.tokensPerSecond.toFixed(2)} tok/s`,
          `${(di.perToken * 1000).toFixed(0)} ms/step (best of ${e.imageDecode.length} x ${im.tokens} tokens), first token ${e.imageDecode.map((q) => `${q.ttftSeconds.toFixed(1)} s`).join(' / ')} (the vision tower, then the vision cache; ${im.promptTokens} prompt tokens, ${r.imageWhat}); reads ${gb(di.bytesPerStep).toFixed(2)} GB/step${r.crossBytes ? ` (incl. the image's cross-attention K/V ${gb(r.crossBytes).toFixed(2)} GB)` : ''}; ${pct(di.fraction)} of the probes taken right after each run (${e.imageDecode.map((q) => q.probeGBs.toFixed(1)).join(', ')} GB/s; per run ${di.fractions.map(pct).join(', ')})${others(e.imageDecode)}`,
        );
      }
      add(`${name} peak RSS through the run`, `${gb(e.peakRssEnd).toFixed(2)} GB`, '');
      summary.push(
        `| ${r.name} | ${mode} | ${d ? `${d.tokensPerSecond.toFixed(2)} (${(d.perToken * 1000).toFixed(0)} ms)` : '-'} | ${d ? `${pct(d.fraction)} (${gb(d.bytesPerStep).toFixed(2)} GB/step)` : '-'} | ${di ? `${di.tokensPerSecond.toFixed(2)} (${(di.perToken * 1000).toFixed(0)} ms)` : '-'} | ${di ? `${pct(di.fraction)} (${gb(di.bytesPerStep).toFixed(2)} GB/step)` : '-'} |`,
      );
    }
    if (r.deletedCaches.length) add(`[${r.name}] quantized weights deleted`, `${r.deletedCaches.length} file(s)`, 'to make room on the disk');
  }
  add('wall time', `${m.totalSeconds.toFixed(0)} s`, '');
  add('machine load average (1 min)', `${m.loadAverageStart.toFixed(2)} / ${m.loadAverageEnd.toFixed(2)}`, 'at start / end; other processes on the machine skew every number');
  console.log('');
  console.log('Decode at batch 1 by family, random weights at the released shapes');
  printRows(rows);
  console.log('');
  console.log('| family | mode | text: tok/s (ms/step) | text: share of bandwidth (bytes/step) | one image: tok/s (ms/step) | one image: share of bandwidth (bytes/step) |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const l of summary) console.log(l);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const keys = (arg('families') ?? 'qwen2vl,gemma3,mllama').split(',') as FamilyKey[];
  for (const k of keys) if (!FAMILIES.some((f) => f.key === k)) throw new Error(`--families: unknown family ${k} (gemma3, mllama, qwen2vl, deepseek)`);
  const modes = (arg('modes') ?? 'auto,int8,int4').split(',') as Array<QuantMode | 'auto'>;
  for (const m of modes) if (m !== 'auto' && !QUANT_MODES.includes(m)) throw new Error(`--modes: unknown mode ${m}`);
  const tokens = Number(arg('tokens') ?? 24);
  const tStart = now();
  const loadStart = loadavg()[0]!;
  if (loadStart > 0.5) log(`warning: the machine is busy (1-min load average ${loadStart.toFixed(2)}); numbers will be low`);
  const cpu = cpuFlags();
  log('measuring memory bandwidth (child process)');
  const bw = runChild<BandwidthResult>(['--bandwidth-child']);
  log(`bandwidth ${bw.bestGBs.toFixed(1)} GB/s`);
  const families: FamilyResult[] = [];
  for (const f of FAMILIES.filter((x) => keys.includes(x.key))) {
    await benchFamily(f, modes, { image: !argv.includes('--no-image'), tokens }, families);
  }
  const free = diskFreeBytes(join(defaultCheckpointDir('2b'), '..'));
  if (!argv.includes('--keep-caches') && free !== null && free < KEEP_FREE_BYTES) {
    for (const r of families) if (r.key !== 'qwen2vl') r.deletedCaches.push(...deleteCaches([r.dir], `${(free / 1e9).toFixed(1)} GB free, under ${KEEP_FREE_BYTES / 1e9} GB`));
  }
  const results = { cpu, bandwidth: bw, families, loadAverageStart: loadStart, loadAverageEnd: loadavg()[0]!, totalSeconds: (now() - tStart) / 1000 };
  printTables(results);
  console.log(JSON.stringify(results));
}

try {
  // Run as `iris serve` runs: with huge pages for malloc (the children inherit them).
  if (!relaunchWithHugePages()) {
    followParent();
    await main();
  }
} catch (e) {
  console.error(e);
  process.exitCode = 1;
}
