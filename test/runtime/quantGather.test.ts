import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/runtime/onnx/graph.js';
import { DataType } from '../../src/runtime/onnx/model.js';
import { GraphSession, i64 } from '../../src/runtime/session.js';
import { addNBitsWeight, gatherQuantizedRows, matMulNBits } from '../helpers/quantGraphOps.js';
import { NBits, dequantize, nbitsLayout, packZeroPoints, quantizeRows } from '../../src/runtime/quant/nbits.js';
import { randomInts, rng } from '../helpers/quantCheckpoints.js';
import { maxRelDiff } from '../helpers/quantGraphs.js';

function table(n: number, k: number, bits: NBits, bs: number, withZeros: boolean, seed: number) {
  const r = rng(seed);
  const q = quantizeRows(Float32Array.from({ length: n * k }, () => r() - 0.5), n, k, bits, bs);
  if (withZeros) q.zeroPoints = packZeroPoints(bits, n, nbitsLayout(bits, bs, k).kBlocks, randomInts(n * nbitsLayout(bits, bs, k).kBlocks, 1 << bits, r));
  return q;
}

test('a tied embedding / lm_head: GatherBlockQuantized rows and MatMulNBits share one B', async () => {
  for (const bits of [4, 8] as const) {
    for (const withZeros of [false, true]) {
      for (const [n, k, bs] of [[50, 64, 32], [30, 72, 16]] as const) { // 72: rows padded to 80, sliced back
        const q = table(n, k, bits, bs, withZeros, n + k + bits);
        const g = new GraphBuilder('tied');
        const ids = g.input('ids', DataType.INT64, [2, 3]);
        const h = g.input('h', DataType.FLOAT, [1, k]);
        const w = addNBitsWeight(g, 'embed', q);
        g.output(gatherQuantizedRows(g, w, ids, 2), 'rows', DataType.FLOAT, [2, 3, k]);
        g.output(matMulNBits(g, h, w), 'logits', DataType.FLOAT, [1, n]);
        const built = g.build();
        assert.equal(built.initializers.filter((t) => t.dataType === DataType.UINT8 && t.dims.length === 3 && t.dims[2] === (bs * bits) / 8).length, 1, 'one B');
        assert.equal(built.nodes.filter((nd) => nd.inputs.includes(w.b)).length, 2, 'read by both ops');
        const s = await GraphSession.create(g, null, { intraOpThreads: 1 });
        try {
          const idv = [3, 0, n - 1, 7, 7, 12];
          const r = rng(1);
          const hv = Float32Array.from({ length: k }, () => r() - 0.5);
          const out = await s.run({ ids: { data: i64(idv), dims: [2, 3] }, h: { data: hv, dims: [1, k] } });
          const dq = dequantize(q);
          assert.deepEqual(out.rows!.dims, [2, 3, k]);
          const want = new Float32Array(idv.length * k);
          idv.forEach((id, i) => want.set(dq.subarray(id * k, (id + 1) * k), i * k));
          assert.deepEqual(out.rows!.data, want, `${bits}-bit zp=${withZeros} k=${k}: gathered rows are the dequantized rows`);
          const logits = new Float32Array(n);
          for (let row = 0; row < n; row++) {
            let acc = 0;
            for (let j = 0; j < k; j++) acc += hv[j]! * dq[row * k + j]!;
            logits[row] = acc;
          }
          assert.ok(maxRelDiff(out.logits!.data, logits) < 1e-5);
        } finally {
          await s.release();
        }
      }
    }
  }
});
