/**
 * The random-weight checkpoint with the real Qwen2-VL-2B-Instruct shapes (BF16) that the
 * benchmarks share, written once to IRIS_BENCH_DIR (default ~/.cache/iris-bench/qwen2vl-2b-random)
 * and reused while its marker file matches.
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointOptions, writeCheckpoint } from '../tools/checkpoint.js';

const MARKER = '.iris-bench-checkpoint.json';
const CHECKPOINT: CheckpointOptions = { arch: 'qwen2_vl', preset: '2b', dtype: 'BF16', shards: 2, seed: 0 };
/** Bump when tools/checkpoint.ts changes what it writes. */
const CHECKPOINT_FORMAT = 1;

export function defaultCheckpointDir(): string {
  return process.env.IRIS_BENCH_DIR ?? join(homedir(), '.cache', 'iris-bench', 'qwen2vl-2b-random');
}

/** Writes the checkpoint into `dir` unless a matching one is there already. */
export function ensureCheckpoint(dir: string, log: (msg: string) => void): { reused: boolean; seconds: number } {
  const want = JSON.stringify({ format: CHECKPOINT_FORMAT, ...CHECKPOINT });
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
  log(`writing the random-weight Qwen2-VL-2B checkpoint (BF16, ~4.4 GB) to ${dir}`);
  rmSync(markerPath, { force: true });
  const t0 = performance.now();
  let last = 0;
  const info = writeCheckpoint(dir, {
    ...CHECKPOINT,
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

// `node dist/bench/checkpoint.js [DIR]` makes the checkpoint alone.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? defaultCheckpointDir();
  const r = ensureCheckpoint(dir, (m) => process.stderr.write(`[bench] ${m}\n`));
  process.stderr.write(`[bench] ${r.reused ? 'reusing' : `wrote in ${r.seconds.toFixed(1)} s`} ${dir}\n`);
}
