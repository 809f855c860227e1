/**
 * The weight layout of ONNX Runtime's com.microsoft.MatMulNBits, and symmetric
 * blockwise quantization into it.
 *
 * Layout (checked against ORT 1.30 CPU with probe graphs, see quant tests):
 * - logical weight W is [n (out), k (in)]; the op computes y = x W^T.
 * - B is [n, kBlocks, blockSize*bits/8] bytes: each row holds its k codes in order,
 *   padded to kBlocks*blockSize; 4-bit codes go two per byte, the lower k in the
 *   low nibble.
 * - scales are [n, kBlocks] (float32 here, as the graph's activations are float32).
 * - uint8 zero points are [n, ceil(kBlocks*bits/8)]: each row padded to whole
 *   bytes, 4-bit ones two per byte with the even block in the low nibble. Without
 *   them the kernel uses 2^(bits-1).
 * - dequantized w = (code - zeroPoint) * scale.
 */
import { ModelLoadError } from '../../errors.js';

export type NBits = 4 | 8;

export interface NBitsWeight {
  bits: NBits;
  blockSize: number;
  /** Output features (rows of W). */
  n: number;
  /** Input features (columns of W). */
  k: number;
  /** [n, ceil(k/blockSize), blockSize*bits/8], as MatMulNBits input B. */
  b: Uint8Array;
  /** [n * ceil(k/blockSize)]. */
  scales: Float32Array;
  /** Packed as MatMulNBits wants uint8 zero points; absent = symmetric (2^(bits-1)). */
  zeroPoints?: Uint8Array;
}

export interface NBitsLayout {
  kBlocks: number;
  /** Bytes per block of one row. */
  blobBytes: number;
  /** Bytes per row of B. */
  rowBytes: number;
  /** Bytes per row of packed zero points. */
  zpRowBytes: number;
  /** The implied zero point when none are given. */
  defaultZero: number;
}

export function nbitsLayout(bits: NBits, blockSize: number, k: number): NBitsLayout {
  const kBlocks = Math.ceil(k / blockSize);
  const blobBytes = (blockSize * bits) / 8;
  return { kBlocks, blobBytes, rowBytes: kBlocks * blobBytes, zpRowBytes: Math.ceil((kBlocks * bits) / 8), defaultZero: 1 << (bits - 1) };
}

/** MatMulNBits (and GatherBlockQuantized) refuse other block sizes. */
export function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new ModelLoadError(`quantization block size ${blockSize} is not a power of two >= 16`);
  }
}

/** Throws if the arrays do not have the sizes the layout implies. */
export function checkNBits(q: NBitsWeight): void {
  if (q.bits !== 4 && q.bits !== 8) throw new ModelLoadError(`unsupported bit width ${q.bits}`);
  checkBlockSize(q.blockSize);
  const L = nbitsLayout(q.bits, q.blockSize, q.k);
  const want = (what: string, got: number, expect: number) => {
    if (got !== expect) throw new ModelLoadError(`quantized weight [${q.n}, ${q.k}]: ${what} has ${got} elements, expected ${expect}`);
  };
  want('B', q.b.length, q.n * L.rowBytes);
  want('scales', q.scales.length, q.n * L.kBlocks);
  if (q.zeroPoints) want('zero points', q.zeroPoints.length, q.n * L.zpRowBytes);
}

/** Packs zero points given one per block ([n * kBlocks], values < 2^bits) as MatMulNBits wants them. */
export function packZeroPoints(bits: NBits, n: number, kBlocks: number, zeros: ArrayLike<number>): Uint8Array {
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const out = new Uint8Array(n * zpRow);
  if (bits === 8) {
    for (let i = 0; i < n * kBlocks; i++) out[i] = zeros[i]!;
    return out;
  }
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < kBlocks; j++) out[r * zpRow + (j >> 1)]! |= (zeros[r * kBlocks + j]! & 15) << ((j & 1) << 2);
  }
  return out;
}

/** One zero point per block, [n * kBlocks] (the implied one when the weight has none). */
export function unpackZeroPoints(q: NBitsWeight): Uint8Array {
  const L = nbitsLayout(q.bits, q.blockSize, q.k);
  const out = new Uint8Array(q.n * L.kBlocks);
  const zp = q.zeroPoints;
  if (!zp) return out.fill(L.defaultZero);
  if (q.bits === 8) {
    out.set(zp.subarray(0, out.length));
    return out;
  }
  for (let r = 0; r < q.n; r++) {
    for (let j = 0; j < L.kBlocks; j++) out[r * L.kBlocks + j] = (zp[r * L.zpRowBytes + (j >> 1)]! >> ((j & 1) << 2)) & 15;
  }
  return out;
}

/** The float weights [n, k] MatMulNBits computes with: (code - zero) * scale, rounded once to float32. */
export function dequantize(q: NBitsWeight): Float32Array {
  checkNBits(q);
  const { n, k, bits, blockSize } = q;
  const L = nbitsLayout(bits, blockSize, k);
  const zeros = unpackZeroPoints(q);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    const rowB = r * L.rowBytes;
    for (let j = 0; j < k; j++) {
      const blk = r * L.kBlocks + ((j / blockSize) | 0);
      const code = bits === 8 ? q.b[rowB + j]! : (q.b[rowB + (j >> 1)]! >> ((j & 1) << 2)) & 15;
      out[r * k + j] = (code - zeros[blk]!) * q.scales[blk]!;
    }
  }
  return out;
}

/** An all-zero weight (codes at the implied zero point), to be filled row by row. */
export function allocNBits(n: number, k: number, bits: NBits, blockSize: number): NBitsWeight {
  checkBlockSize(blockSize);
  const L = nbitsLayout(bits, blockSize, k);
  // Codes at the zero point make untouched bytes (and the padding of a short last block) dequantize to 0.
  const b = new Uint8Array(n * L.rowBytes).fill(bits === 8 ? 0x80 : 0x88);
  return { bits, blockSize, n, k, b, scales: new Float32Array(n * L.kBlocks) };
}

/**
 * Quantizes one row of k floats (src[srcOff..]) into row `row` of q (symmetric).
 *
 * int8 is llama.cpp's Q8_0: scale = absmax/127, code = round(x/scale) + 128.
 * int4 starts from Q4_0 (the value of largest magnitude maps to code 0, i.e. -8),
 * but lets it sit half a step beyond (-8.5) and caps the opposite side at +7.5:
 * |scale| = max(a/8.5, b/7.5), a = largest magnitude, b = largest magnitude of the
 * other sign. Every value then rounds without clipping, so |w - dequant(w)| <=
 * |scale|/2 always (Q4_0 can clip a near-tie to a full step), and on Gaussian,
 * Laplace and Student-t blocks of 32..128 the RMS error is 0.6-4% below Q4_0.
 */
export function quantizeRowInto(q: NBitsWeight, row: number, src: Float32Array, srcOff: number): void {
  if (q.bits === 8) quantizeRow8(q, row, src, srcOff);
  else quantizeRow4(q, row, src, srcOff);
}

// Largest and smallest value of src[start..end) (0 included), and a NaN/infinity check.
// Unrolled by four: this pass costs most, the running max/min mispredicting ~ln(blockSize) times a block.
const range = new Float64Array(2);
function blockRange(src: Float32Array, start: number, end: number, row: number): void {
  let hi = 0;
  let lo = 0;
  let bad = 0; // stays 0 unless a value is NaN or infinite
  let i = start;
  for (; i + 3 < end; i += 4) {
    const a = src[i]!;
    const b = src[i + 1]!;
    const c = src[i + 2]!;
    const d = src[i + 3]!;
    bad += (a + b + c + d) * 0;
    if (a > hi) hi = a;
    else if (a < lo) lo = a;
    if (b > hi) hi = b;
    else if (b < lo) lo = b;
    if (c > hi) hi = c;
    else if (c < lo) lo = c;
    if (d > hi) hi = d;
    else if (d < lo) lo = d;
  }
  for (; i < end; i++) {
    const a = src[i]!;
    bad += a * 0;
    if (a > hi) hi = a;
    else if (a < lo) lo = a;
  }
  if (bad !== 0) throw new ModelLoadError(`non-finite weight in row ${row}`);
  range[0] = hi;
  range[1] = lo;
}

function quantizeRow8(q: NBitsWeight, row: number, src: Float32Array, srcOff: number): void {
  const { k, blockSize, b, scales } = q;
  const kBlocks = Math.ceil(k / blockSize);
  for (let blk = 0; blk < kBlocks; blk++) {
    const start = srcOff + blk * blockSize;
    const end = srcOff + Math.min(k, (blk + 1) * blockSize);
    blockRange(src, start, end, row);
    const hi = range[0]!;
    const lo = range[1]!;
    const amax = Math.max(hi, -lo); // not -0 for an all-zero block
    const scale = amax / 127;
    const inv = scale === 0 ? 0 : 1 / scale;
    scales[row * kBlocks + blk] = scale;
    let o = (row * kBlocks + blk) * blockSize;
    for (let i = start; i < end; i++) {
      // x*inv is in [-127, 127]: +128.5 then truncation is round-half-up, as Math.round.
      let c = (src[i]! * inv + 128.5) | 0;
      if (c > 255) c = 255;
      b[o++] = c;
    }
  }
}

function quantizeRow4(q: NBitsWeight, row: number, src: Float32Array, srcOff: number): void {
  const { k, blockSize, b, scales } = q;
  const kBlocks = Math.ceil(k / blockSize);
  for (let blk = 0; blk < kBlocks; blk++) {
    const start = srcOff + blk * blockSize;
    const end = srcOff + Math.min(k, (blk + 1) * blockSize);
    blockRange(src, start, end, row);
    const hi = range[0]!;
    const lo = range[1]!;
    // The side of largest magnitude goes to the negative end (-8 has no +8 partner).
    const posBig = hi > -lo;
    const a = posBig ? hi : -lo;
    const other = posBig ? -lo : hi;
    const mag = Math.max(a / 8.5, other / 7.5);
    const scale = posBig ? -mag : mag;
    const inv = scale === 0 ? 0 : 1 / scale;
    scales[row * kBlocks + blk] = scale;
    let o = (row * kBlocks + blk) * (blockSize >> 1);
    // x*inv is in [-8.5, 7.5]: +8.5 then truncation rounds half up; 16 is clamped.
    let i = start;
    for (; i + 1 < end; i += 2) {
      let c0 = (src[i]! * inv + 8.5) | 0;
      let c1 = (src[i + 1]! * inv + 8.5) | 0;
      if (c0 > 15) c0 = 15;
      if (c1 > 15) c1 = 15;
      b[o++] = c0 | (c1 << 4);
    }
    if (i < end) {
      let c0 = (src[i]! * inv + 8.5) | 0;
      if (c0 > 15) c0 = 15;
      b[o] = c0 | 0x80; // the missing odd code is padding at the zero point
    }
  }
}

/** Symmetric blockwise quantization of float weights [n, k] (row-major), without zero points. */
export function quantizeRows(w: Float32Array, n: number, k: number, bits: NBits, blockSize: number): NBitsWeight {
  if (w.length !== n * k) throw new ModelLoadError(`quantizeRows: ${w.length} values for a [${n}, ${k}] weight`);
  const q = allocNBits(n, k, bits, blockSize);
  for (let r = 0; r < n; r++) quantizeRowInto(q, r, w, r * k);
  return q;
}

/**
 * The MatMulNBits block size for a checkpoint quantized in groups of `groupSize`
 * along k: the group itself when it is a valid block size, else the largest power
 * of two (<= 256, >= 16) dividing it, each group's scale and zero point then
 * repeated over its blocks (e.g. per-channel groups of k = 3584 use blocks of 256).
 */
export function blockSizeForGroup(groupSize: number, requested?: number): number {
  if (requested !== undefined) {
    checkBlockSize(requested);
    if (groupSize % requested !== 0) throw new ModelLoadError(`block size ${requested} does not divide the quantization group ${groupSize}`);
    return requested;
  }
  let bs = 256;
  while (bs >= 16 && groupSize % bs !== 0) bs >>= 1;
  if (bs < 16) throw new ModelLoadError(`quantization group ${groupSize} is not a multiple of 16, which MatMulNBits blocks need`);
  return bs;
}

/** Drops zero points that all equal the implied one (the kernel then needs none). */
export function dropDefaultZeros(q: NBitsWeight): NBitsWeight {
  const zp = q.zeroPoints;
  if (!zp) return q;
  const L = nbitsLayout(q.bits, q.blockSize, q.k);
  const zeros = unpackZeroPoints(q);
  for (let i = 0; i < zeros.length; i++) if (zeros[i] !== L.defaultZero) return q;
  const { zeroPoints: _, ...rest } = q;
  return rest;
}
