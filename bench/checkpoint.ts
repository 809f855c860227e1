/**
 * The random-weight checkpoints the benchmarks share, written once and reused while their
 * marker file matches:
 *   - '2b': the real Qwen2-VL-2B-Instruct shapes (BF16, 4.4 GB, 2 shards), in
 *     IRIS_BENCH_DIR (default ~/.cache/iris-bench/qwen2vl-2b-random);
 *   - '7b': the real Qwen2.5-VL-7B-Instruct shapes (BF16, 16.6 GB, 5 shards as released), in
 *     IRIS_BENCH_7B_DIR (default ~/.cache/iris-bench/qwen2_5vl-7b-random).
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointOptions, writeCheckpoint } from '../tools/checkpoint.js';

const MARKER = '.iris-bench-checkpoint.json';
export type BenchCheckpoint = '2b' | '7b';
const CHECKPOINTS: Record<BenchCheckpoint, { spec: CheckpointOptions; what: string }> = {
  '2b': { spec: { arch: 'qwen2_vl', preset: '2b', dtype: 'BF16', shards: 2, seed: 0 }, what: 'Qwen2-VL-2B (BF16, ~4.4 GB)' },
  '7b': { spec: { arch: 'qwen2_5_vl', preset: '7b', dtype: 'BF16', shards: 5, seed: 0 }, what: 'Qwen2.5-VL-7B (BF16, ~16.6 GB)' },
};
/** Bump when tools/checkpoint.ts changes what it writes. */
const CHECKPOINT_FORMAT = 1;

export function defaultCheckpointDir(which: BenchCheckpoint = '2b'): string {
  if (which === '7b') return process.env.IRIS_BENCH_7B_DIR ?? join(homedir(), '.cache', 'iris-bench', 'qwen2_5vl-7b-random');
  return process.env.IRIS_BENCH_DIR ?? join(homedir(), '.cache', 'iris-bench', 'qwen2vl-2b-random');
}

/** Writes the checkpoint into `dir` unless a matching one is there already. */
export function ensureCheckpoint(dir: string, log: (msg: string) => void, which: BenchCheckpoint = '2b'): { reused: boolean; seconds: number } {
  const { spec, what } = CHECKPOINTS[which];
  const want = JSON.stringify({ format: CHECKPOINT_FORMAT, ...spec });
  const markerPath = join(dir, MARKER);
  if (existsSync(markerPath)) {
    try {
      const m = JSON.parse(readFileSync(markerPath, 'utf8'));
      const filesOk = (m.files as Array<{ name: string; size: number }>).every((f) => existsSync(join(dir, f.name)) && statSync(join(dir, f.name)).size === f.size);
      if (JSON.stringify(m.spec) === want && filesOk) return { reused: true, seconds: 0 };
    } catch {
      // rewrite below
    }
  }
  log(`writing the random-weight ${what} checkpoint to ${dir}`);
  rmSync(markerPath, { force: true });
  const t0 = performance.now();
  let last = 0;
  const info = writeCheckpoint(dir, {
    ...spec,
    onProgress: (done, total) => {
      if (performance.now() - last > 5000) {
        last = performance.now();
        log(`  ${(done / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB`);
      }
    },
  });
  const files = [...info.files, 'config.json', 'model.safetensors.index.json'].filter((f) => existsSync(join(dir, f))).map((name) => ({ name, size: statSync(join(dir, name)).size }));
  writeFileSync(markerPath, JSON.stringify({ spec: JSON.parse(want), files, totalBytes: info.totalBytes }, null, 2));
  return { reused: false, seconds: (performance.now() - t0) / 1000 };
}

// `node dist/bench/checkpoint.js [--7b] [DIR]` makes a checkpoint alone.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const which: BenchCheckpoint = args.includes('--7b') ? '7b' : '2b';
  const dir = args.find((a) => !a.startsWith('--')) ?? defaultCheckpointDir(which);
  const r = ensureCheckpoint(dir, (m) => process.stderr.write(`[bench] ${m}\n`), which);
  process.stderr.write(`[bench] ${r.reused ? 'reusing' : `wrote in ${r.seconds.toFixed(1)} s`} ${dir}\n`);
}
