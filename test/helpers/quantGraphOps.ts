/**
 * Test graphs for quantized weights (built from raw initializers): MatMulNBits for Linear layers and
 * GatherBlockQuantized for embedding rows, both reading one B initializer, so a
 * tied embedding / lm_head is stored once in the model.
 *
 * Found on ORT 1.30 CPU: GatherBlockQuantized needs data, scales and zero points
 * of the same rank with the quantized axis last, so it reads B as
 * [n, kBlocks, blockSize*bits/8] (quantize_axis 2, one block per last-axis row)
 * with scales [n, kBlocks, 1] and zero points unpacked to one per byte,
 * [n, kBlocks, 1]. MatMulNBits refuses a B of any other shape (also a 2-D one), and
 * a Reshape between would be constant-folded into a second copy. Resident memory
 * is not halved by sharing: MatMulNBits keeps its own prepacked copy of B.
 */
import { DataType } from '../../src/runtime/onnx/model.js';
import { GraphBuilder } from '../../src/runtime/onnx/graph.js';
import { NBitsWeight, checkNBits, nbitsLayout, unpackZeroPoints } from '../../src/runtime/quant/nbits.js';

/** A quantized weight added to a graph; gather-side initializers are added on first use. */
export interface NBitsHandle {
  readonly name: string;
  readonly weight: NBitsWeight;
  readonly b: string;
  readonly scales: string;
  readonly zeroPoints?: string;
  gather?: { scales: string; zeroPoints?: string };
}

function bytes(a: Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Adds q's B, scales and zero points as initializers `${name}.qweight` etc. */
export function addNBitsWeight(g: GraphBuilder, name: string, q: NBitsWeight): NBitsHandle {
  checkNBits(q);
  const L = nbitsLayout(q.bits, q.blockSize, q.k);
  const b = g.initializer({ name: `${name}.qweight`, dataType: DataType.UINT8, dims: [q.n, L.kBlocks, L.blobBytes], raw: q.b });
  const scales = g.initializer({ name: `${name}.scales`, dataType: DataType.FLOAT, dims: [q.n, L.kBlocks], raw: bytes(q.scales) });
  const zeroPoints = q.zeroPoints
    ? g.initializer({ name: `${name}.qzeros`, dataType: DataType.UINT8, dims: [q.n, L.zpRowBytes], raw: q.zeroPoints })
    : undefined;
  return { name, weight: q, b, scales, ...(zeroPoints ? { zeroPoints } : {}) };
}

export interface MatMulNBitsOptions {
  /** Float bias [n], added by the kernel. */
  bias?: string;
  /**
   * 0 (default) keeps float32 activations. 4 quantizes activations to int8 per
   * block: 3-4x faster for 4-bit and the only fast path for 8-bit (which otherwise
   * dequantizes the whole weight on each call), at ~0.3-1% of max |y| error.
   */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
}

/** x [..., k] @ W^T -> [..., n] (inputs of any rank >= 2). */
export function matMulNBits(g: GraphBuilder, x: string, w: NBitsHandle, opts: MatMulNBitsOptions = {}): string {
  const q = w.weight;
  const inputs = [x, w.b, w.scales, w.zeroPoints ?? ''];
  if (opts.bias) inputs.push('', opts.bias); // g_idx left out
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const attrs = { K: q.k, N: q.n, bits: q.bits, block_size: q.blockSize, accuracy_level: opts.accuracyLevel ?? 0 };
  return g.op('MatMulNBits', inputs, attrs, { domain: 'com.microsoft' });
}

/**
 * Dequantized rows of W for integer ids (int64 or int32, rank `idsRank`):
 * [...ids, k], equal to dequantize(q) rows, from the same B as matMulNBits.
 */
export function gatherQuantizedRows(g: GraphBuilder, w: NBitsHandle, ids: string, idsRank = 1): string {
  const q = w.weight;
  const L = nbitsLayout(q.bits, q.blockSize, q.k);
  if (!w.gather) {
    const scales = g.initializer({ name: `${w.name}.scales_g`, dataType: DataType.FLOAT, dims: [q.n, L.kBlocks, 1], raw: bytes(q.scales) });
    const zeroPoints = q.zeroPoints
      ? g.initializer({ name: `${w.name}.qzeros_g`, dataType: DataType.UINT8, dims: [q.n, L.kBlocks, 1], raw: unpackZeroPoints(q) })
      : undefined;
    w.gather = { scales, ...(zeroPoints ? { zeroPoints } : {}) };
  }
  const inputs = [w.b, ids, w.gather.scales];
  if (w.gather.zeroPoints) inputs.push(w.gather.zeroPoints);
  const blocks = g.op('GatherBlockQuantized', inputs, { bits: q.bits, block_size: q.blockSize, gather_axis: 0, quantize_axis: 2 }, { domain: 'com.microsoft' });
  // [...ids, kBlocks, blockSize] -> [...ids, kBlocks*blockSize] (0 keeps a dim), then drop the padding.
  const rows = g.reshape(blocks, [...new Array<number>(idsRank).fill(0), L.kBlocks * q.blockSize]);
  return L.kBlocks * q.blockSize === q.k ? rows : g.slice(rows, [0], [q.k], [-1]);
}
