import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repackAwq } from '../../src/runtime/quant/awq.js';
import { dequantize } from '../../src/runtime/quant/nbits.js';
import { halfBits, int32s } from '../../src/runtime/quant/views.js';
import { packAwq, randomHalfScales, randomInts, referenceWeights, rng } from '../helpers/quantCheckpoints.js';
import { matMulNBitsVsFloat } from '../helpers/quantGraphs.js';

function awqLayer(k: number, n: number, group: number, seed: number, zeros?: Uint8Array) {
  const r = rng(seed);
  const codes = randomInts(k * n, 16, r);
  const z = zeros ?? randomInts((k / group) * n, 16, r);
  const scales = randomHalfScales((k / group) * n, r);
  return { codes, zeros: z, scales, ...packAwq(codes, z, k, n, group) };
}

test('AWQ gemm tensors repack to exactly the weights their codes stand for', () => {
  for (const [k, n, group, blockSize] of [
    [128, 24, 32, undefined],
    [256, 16, 128, undefined],
    [128, 8, 64, 16], // blocks smaller than the group repeat its scale and zero
  ] as const) {
    const t = awqLayer(k, n, group, k + n);
    const q = repackAwq({ qweight: t.qweight, qzeros: t.qzeros, scales: t.scales }, { k, n, groupSize: group, ...(blockSize ? { blockSize } : {}) });
    assert.equal(q.bits, 4);
    assert.equal(q.blockSize, blockSize ?? group);
    assert.ok(q.zeroPoints);
    assert.deepEqual(dequantize(q), referenceWeights(t.codes, t.zeros, t.scales, k, n, group));
  }
});

test('AWQ nibble order: bits 4i..4i+3 of a word hold column [0,2,4,6,1,3,5,7][i]', () => {
  const [k, n] = [16, 8];
  const qweight = new Int32Array(k); // one word per k row
  qweight[5] = 3 << 4; // nibble 1 -> column 2, at k = 5
  const qzeros = new Int32Array(1); // zeros all 0
  const scales = new Uint16Array(n).fill(0x3c00); // 1.0
  const w = dequantize(repackAwq({ qweight, qzeros, scales }, { k, n, groupSize: 16 }));
  const nonzero = [...w.keys()].filter((i) => w[i] !== 0).map((i) => [Math.floor(i / k), i % k, w[i]]);
  assert.deepEqual(nonzero, [[2, 5, 3]]);
});

test('repacked AWQ runs in MatMulNBits like the float weights', async () => {
  const [k, n, group] = [256, 32, 128];
  const t = awqLayer(k, n, group, 7);
  const q = repackAwq({ qweight: t.qweight, qzeros: t.qzeros, scales: t.scales }, { k, n, groupSize: group });
  const r = rng(8);
  const x = Float32Array.from({ length: 4 * k }, () => r() - 0.5);
  const { got, want } = await matMulNBitsVsFloat(q, x, [4, k]);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)), `output ${i}: ${got[i]} vs ${want[i]}`);
});

test('AWQ from safetensors bytes at unaligned offsets; zeros all 8 need no zero points', () => {
  const [k, n, group] = [64, 16, 32];
  const t = awqLayer(k, n, group, 9, new Uint8Array((k / group) * n).fill(8));
  const unaligned = (a: Int32Array | Uint16Array) => {
    const buf = new Uint8Array(a.byteLength + 1);
    buf.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), 1);
    return buf.subarray(1);
  };
  const q = repackAwq({ qweight: int32s(unaligned(t.qweight)), qzeros: int32s(unaligned(t.qzeros)), scales: halfBits(unaligned(t.scales)) }, { k, n, groupSize: group });
  assert.equal(q.zeroPoints, undefined);
  assert.deepEqual(dequantize(q), referenceWeights(t.codes, t.zeros, t.scales, k, n, group));
});

test('AWQ tensors of the wrong size are named', () => {
  const t = awqLayer(64, 16, 32, 10);
  assert.throws(() => repackAwq({ qweight: t.qweight.subarray(1), qzeros: t.qzeros, scales: t.scales }, { k: 64, n: 16, groupSize: 32 }), /qweight has 127 elements, expected 128/);
  assert.throws(() => repackAwq({ qweight: t.qweight, qzeros: t.qzeros, scales: t.scales }, { k: 64, n: 12, groupSize: 32 }), /not a multiple of 8/);
  assert.throws(() => repackAwq({ qweight: t.qweight, qzeros: t.qzeros, scales: t.scales }, { k: 64, n: 16, groupSize: 48 }), /multiple of the group size 48/);
});
