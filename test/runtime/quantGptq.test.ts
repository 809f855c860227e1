import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPTQ_ACT_ORDER_UNSUPPORTED, repackGptq } from '../../src/runtime/quant/gptq.js';
import { dequantize, nbitsLayout } from '../../src/runtime/quant/nbits.js';
import { parseQuantizationConfig } from '../../src/runtime/quant/scheme.js';
import { packGptq, randomHalfScales, randomInts, referenceWeights, rng } from '../helpers/quantCheckpoints.js';
import { matMulNBitsVsFloat, maxRelDiff } from '../helpers/quantGraphs.js';

function gptqLayer(k: number, n: number, bits: 4 | 8, group: number, seed: number, zeroRange: [number, number]) {
  const r = rng(seed);
  const groups = Math.ceil(k / group);
  const codes = randomInts(k * n, 1 << bits, r);
  const zeros = Uint8Array.from({ length: groups * n }, () => zeroRange[0] + Math.floor(r() * (zeroRange[1] - zeroRange[0] + 1)));
  const scales = randomHalfScales(groups * n, r);
  return { codes, zeros, scales };
}

test('GPTQ v1 and v2, 4 and 8 bits, repack to exactly the weights their codes stand for', () => {
  for (const bits of [4, 8] as const) {
    const max = (1 << bits) - 1;
    for (const format of ['gptq_v2', 'autogptq', 'gptqmodel'] as const) {
      for (const [k, n, group] of [
        [128, 16, 32],
        [96, 8, -1], // one group: blocks of 32 share its scale
        [80, 16, 32], // K not a multiple of the group: the last block is padded
      ] as const) {
        const g = group === -1 ? k : group;
        // AutoGPTQ's v1 packing cannot hold a zero of 0; GPTQModel's word arithmetic can.
        const t = gptqLayer(k, n, bits, g, k * bits + n, [format === 'autogptq' ? 1 : 0, max]);
        const packed = packGptq(t.codes, t.zeros, k, n, bits, format);
        const checkpointFormat = format === 'gptq_v2' ? 'gptq_v2' : 'gptq';
        const q = repackGptq({ ...packed, scales: t.scales }, { k, n, bits, groupSize: group, checkpointFormat });
        assert.equal(q.bits, bits);
        const want = referenceWeights(t.codes, t.zeros, t.scales, k, n, g);
        assert.deepEqual(dequantize(q), want, `${bits}-bit ${format} k=${k} group=${group}`);
        if (k % q.blockSize !== 0) {
          // Padding codes sit at the zero point of their block.
          const L = nbitsLayout(bits, q.blockSize, k);
          const lastZero = t.zeros[(Math.ceil(k / g) - 1) * n]!;
          assert.equal(q.b[L.rowBytes - 1], bits === 8 ? lastZero : lastZero * 17);
        }
      }
    }
  }
});

test('v1 zeros are read as stored + 1: the same bytes read as v2 give other weights', () => {
  const t = gptqLayer(64, 8, 4, 32, 3, [1, 15]);
  const packed = packGptq(t.codes, t.zeros, 64, 8, 4, 'autogptq');
  const asV1 = dequantize(repackGptq({ ...packed, scales: t.scales }, { k: 64, n: 8, bits: 4, groupSize: 32, checkpointFormat: 'gptq' }));
  const asV2 = dequantize(repackGptq({ ...packed, scales: t.scales }, { k: 64, n: 8, bits: 4, groupSize: 32, checkpointFormat: 'gptq_v2' }));
  assert.deepEqual(asV1, referenceWeights(t.codes, t.zeros, t.scales, 64, 8, 32));
  assert.notDeepEqual(asV2, asV1);
});

test('symmetric GPTQ (every zero 2^(bits-1)) needs no zero points', () => {
  for (const bits of [4, 8] as const) {
    const mid = 1 << (bits - 1);
    const t = gptqLayer(64, 8, bits, 32, 4, [mid, mid]);
    const q = repackGptq({ ...packGptq(t.codes, t.zeros, 64, 8, bits, 'autogptq'), scales: t.scales }, { k: 64, n: 8, bits, groupSize: 32, checkpointFormat: 'gptq' });
    assert.equal(q.zeroPoints, undefined);
    assert.deepEqual(dequantize(q), referenceWeights(t.codes, t.zeros, t.scales, 64, 8, 32));
  }
});

test('repacked GPTQ runs in MatMulNBits like the float weights', async () => {
  for (const bits of [4, 8] as const) {
    const [k, n, group] = [256, 24, 64];
    const t = gptqLayer(k, n, bits, group, 5 + bits, [0, (1 << bits) - 1]);
    const q = repackGptq({ ...packGptq(t.codes, t.zeros, k, n, bits, 'gptqmodel'), scales: t.scales }, { k, n, bits, groupSize: group, checkpointFormat: 'gptq' });
    const r = rng(6);
    const x = Float32Array.from({ length: 3 * k }, () => r() - 0.5);
    const { got, want } = await matMulNBitsVsFloat(q, x, [3, k]);
    assert.ok(maxRelDiff(got, want) < 1e-5, `${bits}-bit`);
  }
});

test('act-order g_idx is refused with the reason; the trivial g_idx is accepted', () => {
  const [k, n, group] = [64, 8, 32];
  const t = gptqLayer(k, n, 4, group, 7, [1, 15]);
  const packed = packGptq(t.codes, t.zeros, k, n, 4, 'autogptq');
  const shape = { k, n, bits: 4 as const, groupSize: group, checkpointFormat: 'gptq' as const };
  const trivial = Int32Array.from({ length: k }, (_, i) => Math.floor(i / group));
  assert.deepEqual(dequantize(repackGptq({ ...packed, scales: t.scales, gIdx: trivial }, shape)), referenceWeights(t.codes, t.zeros, t.scales, k, n, group));
  const actOrder = trivial.slice().reverse();
  assert.throws(() => repackGptq({ ...packed, scales: t.scales, gIdx: actOrder }, shape), (e: Error) => e.message === GPTQ_ACT_ORDER_UNSUPPORTED);
  assert.match(GPTQ_ACT_ORDER_UNSUPPORTED, /desc_act/);
});

test('GPTQ tensors of the wrong size are named', () => {
  const t = gptqLayer(64, 8, 8, 32, 8, [0, 255]);
  const packed = packGptq(t.codes, t.zeros, 64, 8, 8, 'gptq_v2');
  const shape = { k: 64, n: 8, bits: 8 as const, groupSize: 32, checkpointFormat: 'gptq_v2' as const };
  assert.throws(() => repackGptq({ ...packed, scales: t.scales.subarray(1) }, shape), /scales has 15 elements, expected 16/);
  assert.throws(() => repackGptq({ ...packed, scales: t.scales }, { ...shape, bits: 4 }), /qweight has 128 elements, expected 64/);
});

test('quantization_config: AWQ gemm and GPTQ v1/v2 are read, other variants refused', () => {
  assert.equal(parseQuantizationConfig(undefined), null);
  assert.deepEqual(parseQuantizationConfig({ quant_method: 'awq', bits: 4, group_size: 128, zero_point: true, version: 'GEMM', modules_to_not_convert: ['visual'] }), {
    method: 'awq',
    bits: 4,
    groupSize: 128,
    modulesToNotConvert: ['visual'],
  });
  assert.throws(() => parseQuantizationConfig({ quant_method: 'awq', bits: 4, group_size: 128, version: 'gemv' }), /only "gemm"/);
  const v1 = parseQuantizationConfig({ quant_method: 'gptq', bits: 8, group_size: -1, desc_act: false, sym: false });
  assert.deepEqual(v1, { method: 'gptq', bits: 8, groupSize: -1, sym: false, checkpointFormat: 'gptq', modulesToNotConvert: [] });
  assert.equal(parseQuantizationConfig({ quant_method: 'gptq', bits: 4, group_size: 128, checkpoint_format: 'gptq_v2' })?.method, 'gptq');
  assert.deepEqual((parseQuantizationConfig({ quant_method: 'gptq', bits: 4, group_size: 128, format: 'gptq_v2' }) as { checkpointFormat: string }).checkpointFormat, 'gptq_v2');
  assert.throws(() => parseQuantizationConfig({ quant_method: 'gptq', bits: 4, group_size: 128, desc_act: true }), /desc_act/);
  assert.throws(() => parseQuantizationConfig({ quant_method: 'gptq', bits: 3, group_size: 128 }), /3 bits/);
  assert.throws(() => parseQuantizationConfig({ quant_method: 'fp8' }), /not supported/);
});
