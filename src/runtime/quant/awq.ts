/**
 * AutoAWQ "gemm" checkpoints (e.g. the published Qwen2.5-VL-*-AWQ) repacked into
 * the MatMulNBits layout, integer codes to integer codes (no float weights).
 *
 * The AWQ format, per Linear layer with in_features K, out_features N, group g
 * (AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.from_linear, and
 * awq/utils/packing_utils.py dequantize_gemm; transformers and vLLM unpack the same):
 * - qweight int32 [K, N/8]: packed along N, 8 four-bit codes a word; the code of
 *   column 8c + ORDER[i] sits at bits 4i..4i+3 of word c, ORDER = [0,2,4,6,1,3,5,7]
 *   (unpackers use the inverse, AWQ_REVERSE_ORDER = [0,4,1,5,2,6,3,7]).
 * - qzeros int32 [K/g, N/8]: the same packing; zeros are stored as is (0..15).
 * - scales fp16 [K/g, N].
 * - w[n][k] = (q[k][n] - z[k/g][n]) * s[k/g][n]  (AutoAWQ packs round(w/s) + z).
 */
import { ModelLoadError } from '../../errors.js';
import { NBitsWeight, blockSizeForGroup, checkNBits, dropDefaultZeros, nbitsLayout, packZeroPoints } from './nbits.js';
import { ScalesInput, requireLittleEndian, scaleAt } from './views.js';

/** Nibble position (0..7) of column j within its word. */
export const AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7] as const;

export interface AwqTensors {
  /** [K, N/8]. */
  qweight: Int32Array;
  /** [K/groupSize, N/8]. */
  qzeros: Int32Array;
  /** [K/groupSize, N]: float16 bit patterns or float32 values. */
  scales: ScalesInput;
}

export interface AwqShape {
  /** in_features. */
  k: number;
  /** out_features. */
  n: number;
  groupSize: number;
  /** MatMulNBits block size; defaults to the group (see blockSizeForGroup). */
  blockSize?: number;
}

/** The AWQ zero point of group `grp`, column `col`. */
export function awqZero(qzeros: Int32Array, n: number, grp: number, col: number): number {
  return (qzeros[grp * (n >> 3) + (col >> 3)]! >>> (AWQ_REVERSE_ORDER[col & 7]! << 2)) & 15;
}

export function repackAwq(t: AwqTensors, shape: AwqShape): NBitsWeight {
  requireLittleEndian('repacking AWQ weights');
  const { k, n } = shape;
  const group = shape.groupSize === -1 ? k : shape.groupSize;
  // AutoAWQ itself asserts both of these.
  if (n % 8 !== 0) throw new ModelLoadError(`AWQ weight [${k}, ${n}]: out_features is not a multiple of 8`);
  if (k % group !== 0) throw new ModelLoadError(`AWQ weight [${k}, ${n}]: in_features is not a multiple of the group size ${group}`);
  const groups = k / group;
  const words = n / 8;
  const size = (what: string, got: number, want: number) => {
    if (got !== want) throw new ModelLoadError(`AWQ weight [${k}, ${n}] group ${group}: ${what} has ${got} elements, expected ${want}`);
  };
  size('qweight', t.qweight.length, k * words);
  size('qzeros', t.qzeros.length, groups * words);
  size('scales', t.scales.length, groups * n);

  const blockSize = blockSizeForGroup(group, shape.blockSize);
  const L = nbitsLayout(4, blockSize, k); // kBlocks * blockSize === k here
  const b = new Uint8Array(n * L.rowBytes);
  const out = new Int32Array(b.buffer);
  const rowWords = L.rowBytes / 4;
  const qw = t.qweight;

  // Each 8x8 tile of nibbles (8 rows k of one word column c) is transposed: output
  // word (column 8c + ORDER[i], k-octet o) takes nibble i of the 8 input words, the
  // lowest k in its lowest nibble, which is the MatMulNBits byte order.
  const kOct = k >> 3;
  for (let c = 0; c < words; c++) {
    for (let o = 0; o < kOct; o++) {
      const base = (o << 3) * words + c;
      const w0 = qw[base]!;
      const w1 = qw[base + words]!;
      const w2 = qw[base + 2 * words]!;
      const w3 = qw[base + 3 * words]!;
      const w4 = qw[base + 4 * words]!;
      const w5 = qw[base + 5 * words]!;
      const w6 = qw[base + 6 * words]!;
      const w7 = qw[base + 7 * words]!;
      for (let j = 0; j < 8; j++) {
        const sh = AWQ_REVERSE_ORDER[j]! << 2;
        out[(8 * c + j) * rowWords + o] =
          ((w0 >>> sh) & 15) |
          (((w1 >>> sh) & 15) << 4) |
          (((w2 >>> sh) & 15) << 8) |
          (((w3 >>> sh) & 15) << 12) |
          (((w4 >>> sh) & 15) << 16) |
          (((w5 >>> sh) & 15) << 20) |
          (((w6 >>> sh) & 15) << 24) |
          (((w7 >>> sh) & 15) << 28);
      }
    }
  }

  // Scales and zeros go from [group, n] to [n, block], each group over its blocks.
  const perGroup = group / blockSize;
  const scales = new Float32Array(n * L.kBlocks);
  const zeros = new Uint8Array(n * L.kBlocks);
  for (let col = 0; col < n; col++) {
    for (let blk = 0; blk < L.kBlocks; blk++) {
      const grp = (blk / perGroup) | 0;
      scales[col * L.kBlocks + blk] = scaleAt(t.scales, grp * n + col);
      zeros[col * L.kBlocks + blk] = awqZero(t.qzeros, n, grp, col);
    }
  }
  const q: NBitsWeight = { bits: 4, blockSize, n, k, b, scales, zeroPoints: packZeroPoints(4, n, L.kBlocks, zeros) };
  checkNBits(q);
  return dropDefaultZeros(q);
}
