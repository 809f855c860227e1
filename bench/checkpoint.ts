/**
 * The random-weight checkpoints the benchmarks share, written once and reused while their
 * marker file matches:
 *   - '2b': the real Qwen2-VL-2B-Instruct shapes (BF16, 4.4 GB, 2 shards), in
 *     IRIS_BENCH_DIR (default ~/.cache/iris-bench/qwen2vl-2b-random);
 *   - '7b': the real Qwen2.5-VL-7B-Instruct shapes (BF16, 16.6 GB, 5 shards as released), in
 *     IRIS_BENCH_7B_DIR (default ~/.cache/iris-bench/qwen2_5vl-7b-random);
 *   - 'gemma3-4b', 'mllama-11b': google/gemma-3-4b-it (BF16, 8.6 GB, 2 shards) and
 *     meta-llama/Llama-3.2-11B-Vision-Instruct (BF16, 21.3 GB, 5 shards) shapes
 *     (bench/familyCheckpoints.ts), in ~/.cache/iris-bench/<name>-random.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointOptions, checkpointTensorBytes, writeCheckpoint } from '../tools/checkpoint.js';
import { FamilyCheckpointName, familyCheckpointBytes, familyCheckpointSpec, familyCheckpointWhat, writeFamilyCheckpoint } from './familyCheckpoints.js';

const MARKER = '.iris-bench-checkpoint.json';
export type BenchCheckpoint = '2b' | '7b' | FamilyCheckpointName;

interface CheckpointKind {
  what: string;
  /** What is written; a marker with another spec means the checkpoint is written again. */
  spec: Record<string, unknown>;
  /** Bytes of tensor data (for the disk-space check). */
  bytes(): number;
  write(dir: string, onProgress: (done: number, total: number) => void): { files: string[]; totalBytes: number };
}

const qwen = (spec: CheckpointOptions, what: string): CheckpointKind => ({
  what,
  spec: { ...spec },
  bytes: () => checkpointTensorBytes(spec),
  write: (dir, onProgress) => writeCheckpoint(dir, { ...spec, onProgress }),
});
const family = (name: FamilyCheckpointName): CheckpointKind => ({
  what: familyCheckpointWhat(name),
  spec: familyCheckpointSpec(name),
  bytes: () => familyCheckpointBytes(name),
  write: (dir, onProgress) => writeFamilyCheckpoint(dir, name, onProgress),
});

const CHECKPOINTS: Record<BenchCheckpoint, CheckpointKind> = {
  '2b': qwen({ arch: 'qwen2_vl', preset: '2b', dtype: 'BF16', shards: 2, seed: 0 }, 'Qwen2-VL-2B (BF16, ~4.4 GB)'),
  '7b': qwen({ arch: 'qwen2_5_vl', preset: '7b', dtype: 'BF16', shards: 5, seed: 0 }, 'Qwen2.5-VL-7B (BF16, ~16.6 GB)'),
  'gemma3-4b': family('gemma3-4b'),
  'mllama-11b': family('mllama-11b'),
  'deepseek-vl2-tiny': family('deepseek-vl2-tiny'),
};
/** Bump when tools/checkpoint.ts changes what it writes. */
const CHECKPOINT_FORMAT = 1;

export function defaultCheckpointDir(which: BenchCheckpoint = '2b'): string {
  if (which === '7b') return process.env.IRIS_BENCH_7B_DIR ?? join(homedir(), '.cache', 'iris-bench', 'qwen2_5vl-7b-random');
  if (which === '2b') return process.env.IRIS_BENCH_DIR ?? join(homedir(), '.cache', 'iris-bench', 'qwen2vl-2b-random');
  return join(homedir(), '.cache', 'iris-bench', `${which}-random`);
}

/** Free bytes on the file system holding `path` (or its nearest existing parent); null if unknown. */
export function diskFreeBytes(path: string): number | null {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  try {
    const s = statfsSync(p);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Whether a matching checkpoint is in `dir` already. */
export function checkpointReady(dir: string, which: BenchCheckpoint = '2b'): boolean {
  const want = JSON.stringify({ format: CHECKPOINT_FORMAT, ...CHECKPOINTS[which].spec });
  try {
    const m = JSON.parse(readFileSync(join(dir, MARKER), 'utf8'));
    const filesOk = (m.files as Array<{ name: string; size: number }>).every((f) => existsSync(join(dir, f.name)) && statSync(join(dir, f.name)).size === f.size);
    return JSON.stringify(m.spec) === want && filesOk;
  } catch {
    return false;
  }
}

/** Bytes of disk a checkpoint takes (its tensor data; the JSON and tokenizer files are small). */
export function checkpointBytes(which: BenchCheckpoint): number {
  return CHECKPOINTS[which].bytes();
}

/**
 * Writes the checkpoint into `dir` unless a matching one is there already. Refuses (with the
 * numbers) when the disk has not the room for it and `reserveBytes` more.
 */
export function ensureCheckpoint(dir: string, log: (msg: string) => void, which: BenchCheckpoint = '2b', reserveBytes = 0): { reused: boolean; seconds: number } {
  const { spec, what } = CHECKPOINTS[which];
  const want = JSON.stringify({ format: CHECKPOINT_FORMAT, ...spec });
  if (checkpointReady(dir, which)) return { reused: true, seconds: 0 };
  const markerPath = join(dir, MARKER);
  // An earlier, different checkpoint in the folder is replaced: its weight files free their room.
  let old = 0;
  try {
    for (const f of JSON.parse(readFileSync(markerPath, 'utf8')).files as Array<{ name: string }>) if (existsSync(join(dir, f.name))) old += statSync(join(dir, f.name)).size;
  } catch {
    // no earlier checkpoint
  }
  const need = CHECKPOINTS[which].bytes() + reserveBytes;
  const free = diskFreeBytes(dir);
  if (free !== null && free + old < need) {
    throw new Error(
      `not enough disk space for the ${what} checkpoint in ${dir}: it needs ${(need / 1e9).toFixed(1)} GB` +
        `${reserveBytes ? ` (with ${(reserveBytes / 1e9).toFixed(1)} GB kept for its quantized weights)` : ''}, ${(free / 1e9).toFixed(1)} GB is free`,
    );
  }
  log(`writing the random-weight ${what} checkpoint to ${dir}`);
  mkdirSync(dir, { recursive: true });
  rmSync(markerPath, { force: true });
  const t0 = performance.now();
  let last = 0;
  const info = CHECKPOINTS[which].write(dir, (done, total) => {
    if (performance.now() - last > 5000) {
      last = performance.now();
      log(`  ${(done / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB`);
    }
  });
  const files = [...info.files, 'config.json', 'model.safetensors.index.json'].filter((f) => existsSync(join(dir, f))).map((name) => ({ name, size: statSync(join(dir, name)).size }));
  writeFileSync(markerPath, JSON.stringify({ spec: JSON.parse(want), files, totalBytes: info.totalBytes }, null, 2));
  return { reused: false, seconds: (performance.now() - t0) / 1000 };
}

// `node dist/bench/checkpoint.js [--7b | --gemma3-4b | --mllama-11b] [DIR]` makes a checkpoint alone.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const named = (Object.keys(CHECKPOINTS) as BenchCheckpoint[]).find((k) => args.includes(`--${k}`));
  const which: BenchCheckpoint = named ?? '2b';
  const dir = args.find((a) => !a.startsWith('--')) ?? defaultCheckpointDir(which);
  const r = ensureCheckpoint(dir, (m) => process.stderr.write(`[bench] ${m}\n`), which);
  process.stderr.write(`[bench] ${r.reused ? 'reusing' : `wrote in ${r.seconds.toFixed(1)} s`} ${dir}\n`);
}
