/**
 * Quantization and repacking speed on one core. Run with `npm run bench:quantize`.
 *
 * - quantizeTensorFile: a [8192, 12288] BF16 tensor (~100M weights) written to a
 *   temporary safetensors file at an odd offset, quantized to 4 and 8 bits with
 *   blocks of 32 and 128 (the file is read once first, so the page cache holds it);
 * - quantizeRows from float32, same sizes;
 * - repackAwq / repackGptq of a Qwen2.5-VL-7B MLP projection (K 18944, N 3584).
 *
 * Each figure is the best of 3 runs, in ms per 100M weights.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repackAwq } from '../src/runtime/quant/awq.js';
import { repackGptq } from '../src/runtime/quant/gptq.js';
import { quantizeRows } from '../src/runtime/quant/nbits.js';
import { quantizeTensorFile } from '../src/runtime/quant/rawRows.js';
import { readSafetensorsHeader } from '../src/runtime/safetensors.js';
import { writeSafetensors } from '../test/helpers/quantCheckpoints.js';

function best(runs: number, f: () => void): number {
  let t = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
}

function gaussianBf16(count: number): Uint8Array {
  const out = new Uint16Array(count);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < count; i++) {
    f[0] = Math.sqrt(-2 * Math.log(Math.random() + 1e-12)) * Math.cos(2 * Math.PI * Math.random()) * 0.02;
    out[i] = u[0]! >>> 16;
  }
  return new Uint8Array(out.buffer);
}

const per100M = (ms: number, weights: number) => ((ms * 1e8) / weights).toFixed(0);

const [n, k] = [8192, 12288];
const dir = mkdtempSync(join(tmpdir(), 'iris-qbench-'));
try {
  const file = join(dir, 'w.safetensors');
  writeSafetensors(file, [
    { name: 'pad', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
    { name: 'w', dtype: 'BF16', shape: [n, k], data: gaussianBf16(n * k) },
  ]);
  readFileSync(file); // into the page cache
  const loc = readSafetensorsHeader(file).find((t) => t.name === 'w')!;
  for (const bits of [4, 8] as const) {
    for (const bs of [32, 128]) {
      console.log(`quantizeTensorFile BF16 -> ${bits}-bit, block ${bs}: ${per100M(best(3, () => quantizeTensorFile(loc, bits, bs)), n * k)} ms / 100M weights`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

{
  const rows = 2048;
  const w = Float32Array.from({ length: rows * k }, () => Math.random() - 0.5);
  for (const bits of [4, 8] as const) {
    for (const bs of [32, 128]) {
      console.log(`quantizeRows F32 -> ${bits}-bit, block ${bs}: ${per100M(best(3, () => quantizeRows(w, rows, k, bits, bs)), rows * k)} ms / 100M weights`);
    }
  }
}

{
  const [K, N, group] = [18944, 3584, 128];
  const rand32 = (len: number) => Int32Array.from({ length: len }, () => (Math.random() * 2 ** 32) | 0);
  const scales = Uint16Array.from({ length: (K / group) * N }, () => 0x2000 + ((Math.random() * 1024) | 0));
  const awq = { qweight: rand32((K * N) / 8), qzeros: rand32(((K / group) * N) / 8), scales };
  console.log(`repackAwq [${K}, ${N}] 4-bit: ${per100M(best(3, () => repackAwq(awq, { k: K, n: N, groupSize: group })), K * N)} ms / 100M weights`);
  for (const bits of [4, 8] as const) {
    const gptq = { qweight: rand32((K * bits * N) / 32), qzeros: rand32(((K / group) * N * bits) / 32), scales };
    const ms = best(3, () => repackGptq(gptq, { k: K, n: N, bits, groupSize: group, checkpointFormat: 'gptq' }));
    console.log(`repackGptq [${K}, ${N}] ${bits}-bit: ${per100M(ms, K * N)} ms / 100M weights`);
  }
}
