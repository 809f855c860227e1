/** Small ORT graphs comparing MatMulNBits with a float MatMul over the dequantized weights. */
import { GraphBuilder } from '../../src/runtime/onnx/graph.js';
import { DataType } from '../../src/runtime/onnx/model.js';
import { GraphSession } from '../../src/runtime/session.js';
import { addNBitsWeight, matMulNBits } from './quantGraphOps.js';
import { NBitsWeight, dequantize } from '../../src/runtime/quant/nbits.js';

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = w[i * cols + j]!;
  return t;
}

export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

/**
 * Runs x through MatMulNBits with q (accuracy level 0) and through a float MatMul
 * with dequantize(q); returns both outputs.
 */
export async function matMulNBitsVsFloat(q: NBitsWeight, x: Float32Array, dims: number[], bias?: Float32Array): Promise<{ got: Float32Array; want: Float32Array; dims: readonly number[] }> {
  const g = new GraphBuilder('nbits');
  const xi = g.input('x', DataType.FLOAT, dims);
  const w = addNBitsWeight(g, 'w', q);
  const biasName = bias ? g.constFloat(bias) : undefined;
  const outDims = [...dims.slice(0, -1), q.n];
  g.output(matMulNBits(g, xi, w, biasName ? { bias: biasName } : {}), 'got', DataType.FLOAT, outDims);
  const wt = g.initializer({ name: 'wt', dataType: DataType.FLOAT, dims: [q.k, q.n], raw: new Uint8Array(transpose(dequantize(q), q.n, q.k).buffer) });
  const ref = g.matmul(xi, wt);
  g.output(biasName ? g.add(ref, biasName) : ref, 'want', DataType.FLOAT, outDims);
  const s = await GraphSession.create(g, null, { intraOpThreads: 1 });
  try {
    const out = await s.run({ x: { data: x, dims } });
    return { got: out.got!.data, want: out.want!.data, dims: out.got!.dims };
  } finally {
    await s.release();
  }
}
