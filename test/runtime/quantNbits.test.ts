import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, toFloat32 } from '../../src/runtime/safetensors.js';
import {
  NBits,
  NBitsWeight,
  allocNBits,
  dequantize,
  nbitsLayout,
  packZeroPoints,
  quantizeRows,
  unpackZeroPoints,
} from '../../src/runtime/quant/nbits.js';
import { quantizeRaw, quantizeRowsInto, quantizeTensorFile } from '../../src/runtime/quant/rawRows.js';
import { f32BitsToBf16, f32BitsToF16 } from '../../tools/checkpoint.js';
import { randomInts, rng, writeSafetensors } from '../helpers/quantCheckpoints.js';
import { matMulNBitsVsFloat, maxRelDiff } from '../helpers/quantGraphs.js';

function gaussian(count: number, r: () => number, sd = 1): Float32Array {
  return Float32Array.from({ length: count }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * sd);
}

/** A weight with arbitrary codes, scales (both signs) and, optionally, zero points. */
function randomNBits(n: number, k: number, bits: NBits, blockSize: number, withZeros: boolean, r: () => number): NBitsWeight {
  const q = allocNBits(n, k, bits, blockSize);
  const L = nbitsLayout(bits, blockSize, k);
  const codes = randomInts(n * L.kBlocks * blockSize, 1 << bits, r);
  if (bits === 8) q.b.set(codes);
  else for (let i = 0; i < q.b.length; i++) q.b[i] = codes[2 * i]! | (codes[2 * i + 1]! << 4);
  for (let i = 0; i < q.scales.length; i++) q.scales[i] = (r() - 0.3) * 0.05;
  if (withZeros) q.zeroPoints = packZeroPoints(bits, n, L.kBlocks, randomInts(n * L.kBlocks, 1 << bits, r));
  return q;
}

test('MatMulNBits computes with exactly the weights dequantize returns (4/8 bits, zero points, odd K)', async () => {
  const r = rng(1);
  for (const bits of [4, 8] as const) {
    for (const withZeros of [false, true]) {
      // kBlocks 3 (odd: zero points rows padded to whole bytes), K not a multiple of the block.
      for (const [k, bs] of [[64, 32], [45, 16], [200, 64]] as const) {
        const q = randomNBits(12, k, bits, bs, withZeros, r);
        const x = gaussian(3 * k, r);
        const { got, want } = await matMulNBitsVsFloat(q, x, [3, k]);
        const err = maxRelDiff(got, want);
        assert.ok(err < 1e-5, `${bits}-bit zp=${withZeros} k=${k} bs=${bs}: max relative difference ${err}`);
      }
    }
  }
});

test('MatMulNBits takes a 3-D input and a bias', async () => {
  const r = rng(2);
  for (const bits of [4, 8] as const) {
    const q = randomNBits(10, 96, bits, 32, true, r);
    const bias = gaussian(10, r);
    const { got, want, dims } = await matMulNBitsVsFloat(q, gaussian(2 * 3 * 96, r), [2, 3, 96], bias);
    assert.deepEqual(dims, [2, 3, 10]);
    assert.ok(maxRelDiff(got, want) < 1e-5);
  }
});

test('symmetric quantization stays within half a step of every weight, also with K not a multiple of the block', async () => {
  const r = rng(3);
  for (const bits of [4, 8] as const) {
    for (const [n, k, bs] of [[16, 256, 32], [7, 45, 16], [5, 300, 128]] as const) {
      const w = gaussian(n * k, r, 0.02);
      // Blocks with ties at both ends, all zeros and one outlier: the awkward cases.
      w.fill(0.5, 0, 8);
      w.fill(-0.5, 8, 16);
      w.fill(0, k, k + Math.min(bs, k));
      w[2 * k + 3] = 3;
      const q = quantizeRows(w, n, k, bits, bs);
      const dq = dequantize(q);
      const L = nbitsLayout(bits, bs, k);
      assert.equal(q.zeroPoints, undefined);
      for (let row = 0; row < n; row++) {
        for (let j = 0; j < k; j++) {
          const s = Math.abs(q.scales[row * L.kBlocks + Math.floor(j / bs)]!);
          const e = Math.abs(w[row * k + j]! - dq[row * k + j]!);
          assert.ok(e <= s / 2 + s * 1e-6 + 1e-12, `${bits}-bit row ${row} col ${j}: error ${e} > scale/2 = ${s / 2}`);
        }
      }
      // The all-zero block has scale 0 and dequantizes to exact zeros.
      assert.equal(q.scales[L.kBlocks], 0);
      // Padding of a short last block holds codes at the zero point.
      if (k % bs) {
        const last = L.rowBytes - 1;
        assert.equal(q.b[last], bits === 8 ? 0x80 : 0x88);
      }
      // Runs as is in MatMulNBits (negative scales included).
      const { got, want } = await matMulNBitsVsFloat(q, gaussian(2 * k, r), [2, k]);
      assert.ok(maxRelDiff(got, want) < 1e-5);
    }
  }
});

test('int8 is Q8_0 (absmax/127, codes round(x/scale) + 128)', () => {
  const w = Float32Array.from({ length: 32 }, (_, i) => (i - 10) * 0.1);
  const q = quantizeRows(w, 1, 32, 8, 32);
  const absmax = Math.fround(2.1);
  assert.equal(q.scales[0], Math.fround(absmax / 127));
  for (let i = 0; i < 32; i++) assert.equal(q.b[i], Math.round(w[i]! / (absmax / 127)) + 128);
});

test('int4 choice: lower error than llama.cpp Q4_0 on Gaussian weights', () => {
  const r = rng(4);
  const n = 256;
  const k = 256;
  const w = gaussian(n * k, r);
  const dq = dequantize(quantizeRows(w, n, k, 4, 32));
  // Q4_0, written out independently: scale = (signed value of largest magnitude) / -8.
  let q40 = 0;
  let ours = 0;
  for (let o = 0; o < n * k; o += 32) {
    let m = 0;
    for (let i = o; i < o + 32; i++) if (Math.abs(w[i]!) > Math.abs(m)) m = w[i]!;
    const d = m / -8;
    for (let i = o; i < o + 32; i++) {
      const c = Math.min(15, Math.max(0, Math.round(w[i]! / d) + 8));
      q40 += (w[i]! - (c - 8) * d) ** 2;
      ours += (w[i]! - dq[i]!) ** 2;
    }
  }
  assert.ok(ours < 0.995 * q40, `squared error ${ours} vs Q4_0 ${q40}`);
});

test('zero points pack two 4-bit blocks a byte, each row padded to whole bytes', () => {
  const zeros = Uint8Array.from([1, 2, 3, 4, 5, 6]); // 2 rows x 3 blocks
  assert.deepEqual([...packZeroPoints(4, 2, 3, zeros)], [0x21, 0x03, 0x54, 0x06]);
  assert.deepEqual([...packZeroPoints(8, 2, 3, zeros)], [1, 2, 3, 4, 5, 6]);
  const q = { ...allocNBits(2, 48, 4, 16), zeroPoints: packZeroPoints(4, 2, 3, zeros) };
  assert.deepEqual([...unpackZeroPoints(q)], [...zeros]);
});

function encode(w: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(w.slice().buffer);
  const bits = new Uint32Array(w.slice().buffer);
  const out = new Uint8Array(w.length * 2);
  for (let i = 0; i < w.length; i++) {
    const h = dtype === 'BF16' ? f32BitsToBf16(bits[i]!) : f32BitsToF16(bits[i]!);
    out[2 * i] = h & 255;
    out[2 * i + 1] = h >> 8;
  }
  return out;
}

test('raw F32/F16/BF16 rows, aligned or not, quantize exactly as their float values', () => {
  const r = rng(5);
  const [n, k] = [9, 80];
  const w = gaussian(n * k, r, 0.05);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const raw = encode(w, dtype);
    const want = quantizeRows(toFloat32(raw, dtype), n, k, 4, 32);
    for (const shift of [0, 1, 3]) {
      const buf = new Uint8Array(raw.length + shift);
      buf.set(raw, shift);
      const src = buf.subarray(shift);
      for (const bits of [4, 8] as const) {
        const ref = bits === 4 ? want : quantizeRows(toFloat32(raw, dtype), n, k, 8, 32);
        // Whole tensor, and three uneven chunks of rows.
        const whole = quantizeRaw(src, dtype, n, k, bits, 32);
        const chunked = allocNBits(n, k, bits, 32);
        const rowBytes = src.length / n;
        let row = 0;
        for (const rows of [2, 5, 2]) row += quantizeRowsInto(chunked, row, src.subarray(row * rowBytes, (row + rows) * rowBytes), dtype);
        for (const got of [whole, chunked]) {
          assert.deepEqual(got.b, ref.b, `${dtype} shift ${shift} ${bits}-bit codes`);
          assert.deepEqual(got.scales, ref.scales, `${dtype} shift ${shift} ${bits}-bit scales`);
        }
      }
    }
  }
});

test('a safetensors tensor is quantized from its file chunk by chunk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-quant-'));
  try {
    const r = rng(6);
    const [n, k] = [37, 96];
    const w = gaussian(n * k, r, 0.03);
    const raw = encode(w, 'BF16');
    const file = join(dir, 'w.safetensors');
    // A 3-byte tensor first puts the weight at an odd offset.
    writeSafetensors(file, [
      { name: 'a', dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      { name: 'w', dtype: 'BF16', shape: [n, k], data: raw },
    ]);
    const loc = readSafetensorsHeader(file).find((t) => t.name === 'w')!;
    assert.equal(loc.offset % 2, 1);
    const want = quantizeRaw(raw, 'BF16', n, k, 4, 32);
    for (const chunkBytes of [1, 5 * k * 2, 1 << 20]) {
      const got = quantizeTensorFile(loc, 4, 32, chunkBytes);
      assert.deepEqual(got.b, want.b);
      assert.deepEqual(got.scales, want.scales);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NaN and infinite weights are refused, sizes are checked', () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    const w = new Float32Array(64).fill(0.1);
    w[40] = bad;
    assert.throws(() => quantizeRows(w, 2, 32, 4, 32), /non-finite weight in row 1/);
  }
  assert.throws(() => quantizeRows(new Float32Array(10), 2, 4, 4, 32), /10 values for a \[2, 4\] weight/);
  assert.throws(() => quantizeRows(new Float32Array(64), 2, 32, 4, 24), /not a power of two/);
  const q = quantizeRows(new Float32Array(64), 2, 32, 4, 16);
  assert.throws(() => dequantize({ ...q, scales: new Float32Array(3) }), /scales has 3 elements, expected 4/);
});
