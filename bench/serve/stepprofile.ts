/**
 * Diagnostic (not part of `npm run bench:serve`): times the text decoder's forward pass
 * in-process for decode batches of 1..8 and for prefill chunks, on a checkpoint with the
 * Qwen2-VL-2B widths but only a few layers (written once to IRIS_BENCH_PROFILE_DIR), so
 * the serving numbers can be split into per-layer and fixed (embedding / lm_head) costs.
 *
 *   node dist/bench/serve/stepprofile.js [layers=4] [threads=2]
 */
import { existsSync } from 'node:fs';
import { homedir, loadavg } from 'node:os';
import { join } from 'node:path';
import { KvPagePool } from '../../src/engine/kvPool.js';
import { sampleToken, SamplerState } from '../../src/engine/sampler.js';
import { DEFAULT_SAMPLING } from '../../src/engine/samplingParams.js';
import { kvLayers, loadModel, loadModelConfig } from '../../src/models/registry.js';
import { ForwardSeq } from '../../src/models/model.js';
import { writeCheckpoint } from '../../tools/checkpoint.js';
import { median } from './util.js';

const layers = Number(process.argv[2] ?? 4);
const threads = Number(process.argv[3] ?? 2);
const dir = process.env.IRIS_BENCH_PROFILE_DIR ?? join(homedir(), '.cache', 'iris-bench', `qwen2vl-2b-width-${layers}layers`);
if (!existsSync(join(dir, 'config.json'))) {
  process.stderr.write(`writing ${dir}\n`);
  writeCheckpoint(dir, { arch: 'qwen2_vl', preset: '2b', dtype: 'BF16', text: { numLayers: layers }, vision: { depth: 1 } });
}
const config = loadModelConfig(dir);
const t0 = performance.now();
const model = await loadModel(dir, config, { intraOpThreads: threads });
process.stderr.write(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
const tc = config.text;
const ps = model.pageSize;
const pool = new KvPagePool(kvLayers(config), 2700, ps);
let nextPage = 1;
const seq = (past: number, n: number): ForwardSeq => {
  const pages = Array.from({ length: Math.ceil((past + n) / ps) }, () => nextPage++);
  const ids = Int32Array.from({ length: n }, (_, i) => 100 + ((i * 7) % 150));
  const positions = new Int32Array(3 * n);
  for (let a = 0; a < 3; a++) for (let i = 0; i < n; i++) positions[a * n + i] = past + i;
  return { ids, positions, pages, pastLen: past };
};
const time = async (seqs: ForwardSeq[], reps: number) => {
  const xs: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    const t = performance.now();
    await model.forward(seqs, new Float32Array(0), pool);
    if (r > 0) xs.push(performance.now() - t);
  }
  return median(xs);
};
const rows: Array<[string, number]> = [];
for (const B of [1, 2, 4, 8]) {
  nextPage = 1;
  rows.push([`decode B=${B} (past 80)`, await time(Array.from({ length: B }, () => seq(80, 1)), 5)]);
}
for (const S of [16, 77, 256]) {
  nextPage = 1;
  rows.push([`prefill S=${S} (past 0)`, await time([seq(0, S)], 3)]);
}
nextPage = 1;
rows.push([`prefill S=16 (past 4000)`, await time([seq(4000, 16)], 3)]);
// Sampling cost per sequence on the engine thread (vocab-sized logits).
const logits = new Float32Array(tc.vocabSize).map((_, i) => Math.sin(i * 12.9898) * 3);
const scratch = new Float32Array(tc.vocabSize);
for (const [name, params] of [
  ['sample greedy + logprob', { ...DEFAULT_SAMPLING, temperature: 0, topLogprobs: 0 }],
  ['sample temperature 0.7, top_p 0.8', { ...DEFAULT_SAMPLING, temperature: 0.7, topP: 0.8 }],
] as const) {
  const st = new SamplerState(params, [], []);
  const xs: number[] = [];
  for (let r = 0; r < 6; r++) {
    const t = performance.now();
    sampleToken(logits, st, scratch);
    xs.push(performance.now() - t);
  }
  rows.push([name, median(xs.slice(1))]);
}
for (const [k, v] of rows) console.log(`${k.padEnd(36)} ${v.toFixed(1).padStart(9)} ms`);
console.log(`layers ${layers}, threads ${threads}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
await model.release();
