/**
 * GPTQ checkpoints (AutoGPTQ / GPTQModel, quant_method "gptq", 4 or 8 bits)
 * repacked into the MatMulNBits layout, integer codes to integer codes.
 *
 * The format, per Linear layer with in_features K, out_features N, group g
 * (AutoGPTQ nn_modules/qlinear/qlinear_cuda_old.py QuantLinear.pack and its
 * torch forward; GPTQModel keeps the layout):
 * - qweight int32 [K*bits/32, N]: packed along K, low bits first: word (r, n)
 *   holds k = r*32/bits + j at bits j*bits.
 * - qzeros int32 [ceil(K/g), N*bits/32]: packed along N the same way.
 * - scales fp16 [ceil(K/g), N]; g_idx int32 [K] = the group of each k.
 * - w[n][k] = (q[k][n] - z[g_idx[k]][n]) * s[g_idx[k]][n].
 *
 * checkpoint_format "gptq" (v1, the default when absent) stores z - 1: AutoGPTQ's
 * pack does `zeros -= 1` and its forward adds 1 back. "gptq_v2" stores z. GPTQModel
 * (whose conversion transformers/optimum call) turns v1 into v2 by adding
 * 0x11111111 (4-bit) / 0x01010101 (8-bit) to each qzeros word with carries
 * (gptqmodel/utils/model.py convert_gptq_v1_to_v2_format_module), the exact
 * inverse of its own v2 -> v1 export, and so does this; for the usual zeros
 * (1..2^bits-1) it equals adding 1 to each field.
 *
 * Because MatMulNBits' bytes are k-major per row with the lowest k in the lowest
 * bits, a GPTQ qweight word is already four bytes of a MatMulNBits row: repacking
 * the codes is an int32 transpose.
 */
import { ModelLoadError } from '../../errors.js';
import { NBits, NBitsWeight, blockSizeForGroup, checkNBits, dropDefaultZeros, nbitsLayout, packZeroPoints } from './nbits.js';
import { ScalesInput, requireLittleEndian, scaleAt } from './views.js';

export type GptqCheckpointFormat = 'gptq' | 'gptq_v2';

export interface GptqTensors {
  /** [K*bits/32, N]. */
  qweight: Int32Array;
  /** [ceil(K/groupSize), N*bits/32]. */
  qzeros: Int32Array;
  /** [ceil(K/groupSize), N]: float16 bit patterns or float32 values. */
  scales: ScalesInput;
  /** [K]; only checked (it must be the trivial k / groupSize). */
  gIdx?: Int32Array;
}

export interface GptqShape {
  k: number;
  n: number;
  bits: NBits;
  /** -1 = one group over all of K. */
  groupSize: number;
  checkpointFormat: GptqCheckpointFormat;
  /** MatMulNBits block size; defaults to the group (see blockSizeForGroup). */
  blockSize?: number;
}

/** Why act-order checkpoints are refused (probed on ORT 1.30 CPU). */
export const GPTQ_ACT_ORDER_UNSUPPORTED =
  'GPTQ with desc_act (act-order g_idx) is not supported: ONNX Runtime 1.30 CPU MatMulNBits honours g_idx only for 4-bit ' +
  'weights, ignores uint8 zero points with it, and runs it by dequantizing the whole weight on every call; ' +
  'use a checkpoint quantized with desc_act=false';

/** The zero points of one group row, v1 words corrected to v2 (see the header). */
function zeroWord(qzeros: Int32Array, idx: number, bits: NBits, format: GptqCheckpointFormat): number {
  const w = qzeros[idx]!;
  if (format === 'gptq_v2') return w;
  return (w + (bits === 4 ? 0x11111111 : 0x01010101)) | 0;
}

export function repackGptq(t: GptqTensors, shape: GptqShape): NBitsWeight {
  requireLittleEndian('repacking GPTQ weights');
  const { k, n, bits } = shape;
  if (bits !== 4 && bits !== 8) throw new ModelLoadError(`GPTQ with ${bits} bits is not supported (4 or 8)`);
  if (shape.checkpointFormat !== 'gptq' && shape.checkpointFormat !== 'gptq_v2') {
    throw new ModelLoadError(`unknown GPTQ checkpoint_format ${JSON.stringify(shape.checkpointFormat)}`);
  }
  const group = shape.groupSize === -1 ? k : shape.groupSize;
  const perWord = 32 / bits;
  if (k % perWord !== 0 || n % perWord !== 0) throw new ModelLoadError(`GPTQ weight [${k}, ${n}]: sizes are not multiples of ${perWord}`);
  const groups = Math.ceil(k / group);
  const kWords = k / perWord;
  const zWords = n / perWord;
  const size = (what: string, got: number, want: number) => {
    if (got !== want) throw new ModelLoadError(`GPTQ weight [${k}, ${n}] ${bits}-bit group ${group}: ${what} has ${got} elements, expected ${want}`);
  };
  size('qweight', t.qweight.length, kWords * n);
  size('qzeros', t.qzeros.length, groups * zWords);
  size('scales', t.scales.length, groups * n);
  if (t.gIdx) {
    size('g_idx', t.gIdx.length, k);
    for (let i = 0; i < k; i++) if (t.gIdx[i] !== ((i / group) | 0)) throw new ModelLoadError(GPTQ_ACT_ORDER_UNSUPPORTED);
  }

  const blockSize = blockSizeForGroup(group, shape.blockSize);
  const L = nbitsLayout(bits, blockSize, k);
  const perGroup = group / blockSize;
  const mask = (1 << bits) - 1;

  // Zero points and scales, [group, n] -> [n, block].
  const scales = new Float32Array(n * L.kBlocks);
  const zeros = new Uint8Array(n * L.kBlocks);
  for (let blk = 0; blk < L.kBlocks; blk++) {
    const grp = (blk / perGroup) | 0;
    for (let col = 0; col < n; col++) {
      const zw = zeroWord(t.qzeros, grp * zWords + ((col / perWord) | 0), bits, shape.checkpointFormat);
      zeros[col * L.kBlocks + blk] = (zw >>> ((col % perWord) * bits)) & mask;
      scales[col * L.kBlocks + blk] = scaleAt(t.scales, grp * n + col);
    }
  }

  // Codes: out row n = the words of qweight column n, tile by tile for the cache.
  const b = new Uint8Array(n * L.rowBytes);
  const out = new Int32Array(b.buffer);
  const rowWords = L.rowBytes / 4;
  const qw = t.qweight;
  const T = 32;
  for (let r0 = 0; r0 < kWords; r0 += T) {
    const r1 = Math.min(kWords, r0 + T);
    for (let c0 = 0; c0 < n; c0 += T) {
      const c1 = Math.min(n, c0 + T);
      for (let col = c0; col < c1; col++) {
        const o = col * rowWords;
        for (let r = r0; r < r1; r++) out[o + r] = qw[r * n + col]!;
      }
    }
  }
  // A short last block is padded with its zero point, so the padding dequantizes to 0.
  if (kWords < rowWords) {
    for (let col = 0; col < n; col++) {
      const z = zeros[col * L.kBlocks + L.kBlocks - 1]!;
      b.fill(bits === 8 ? z : z | (z << 4), (col * rowWords + kWords) * 4, (col + 1) * rowWords * 4);
    }
  }

  const q: NBitsWeight = { bits, blockSize, n, k, b, scales, zeroPoints: packZeroPoints(bits, n, L.kBlocks, zeros) };
  checkNBits(q);
  return dropDefaultZeros(q);
}
