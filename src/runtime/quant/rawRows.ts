/**
 * Quantizes checkpoint weights straight from their stored bytes (F32/F16/BF16,
 * little-endian, at any byte offset), a chunk of rows at a time, so a large
 * weight never exists as one float32 array: only one decoded row does.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { ModelLoadError } from '../../errors.js';
import { F16_TABLE, TensorLocation } from '../safetensors.js';
import { NBits, NBitsWeight, allocNBits, checkNBits, quantizeRowInto } from './nbits.js';

export type RawFloatDtype = 'F32' | 'F16' | 'BF16';

const BYTES: Record<RawFloatDtype, number> = { F32: 4, F16: 2, BF16: 2 };

// Typed-array views below read the bytes in host order; checkpoints are little-endian.
const LITTLE = endianness() === 'LE';

/** Decodes `k` values starting at byte `off` of `src` into `row` (float32). */
function decodeRow(src: Uint8Array, off: number, k: number, dtype: RawFloatDtype, row: Float32Array, rowBits: Int32Array): Float32Array {
  const abs = src.byteOffset + off;
  if (dtype === 'F32') {
    if (LITTLE && abs % 4 === 0) return new Float32Array(src.buffer, abs, k); // no copy
    if (LITTLE) {
      new Uint8Array(row.buffer, 0, k * 4).set(src.subarray(off, off + k * 4));
      return row;
    }
    for (let i = 0, p = off; i < k; i++, p += 4) rowBits[i] = src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24);
    return row;
  }
  const aligned = LITTLE && abs % 2 === 0;
  const u16 = aligned ? new Uint16Array(src.buffer, abs, k) : null;
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32.
    if (u16) for (let i = 0; i < k; i++) rowBits[i] = u16[i]! << 16;
    else for (let i = 0, p = off; i < k; i++, p += 2) rowBits[i] = (src[p]! << 16) | (src[p + 1]! << 24);
  } else {
    if (u16) for (let i = 0; i < k; i++) row[i] = F16_TABLE[u16[i]!]!;
    else for (let i = 0, p = off; i < k; i++, p += 2) row[i] = F16_TABLE[src[p]! | (src[p + 1]! << 8)]!;
  }
  return row;
}

/**
 * Quantizes the whole rows held in `src` (raw `dtype` bytes, row-major [rows, q.k])
 * into q starting at row `row0`; returns the number of rows written.
 */
export function quantizeRowsInto(q: NBitsWeight, row0: number, src: Uint8Array, dtype: RawFloatDtype): number {
  const rowBytes = q.k * BYTES[dtype];
  if (src.length % rowBytes !== 0) throw new ModelLoadError(`quantizeRowsInto: ${src.length} bytes is not a whole number of ${q.k}-wide ${dtype} rows`);
  const rows = src.length / rowBytes;
  if (row0 < 0 || row0 + rows > q.n) throw new ModelLoadError(`quantizeRowsInto: rows ${row0}..${row0 + rows} outside [0, ${q.n})`);
  const scratch = new Float32Array(q.k);
  const bits = new Int32Array(scratch.buffer);
  for (let r = 0; r < rows; r++) {
    const row = decodeRow(src, r * rowBytes, q.k, dtype, scratch, bits);
    quantizeRowInto(q, row0 + r, row, 0);
  }
  return rows;
}

/** Symmetric quantization of a [n, k] tensor given as raw bytes (e.g. a safetensors slice). */
export function quantizeRaw(src: Uint8Array, dtype: RawFloatDtype, n: number, k: number, bits: NBits, blockSize: number): NBitsWeight {
  if (src.length !== n * k * BYTES[dtype]) throw new ModelLoadError(`quantizeRaw: ${src.length} bytes for a [${n}, ${k}] ${dtype} tensor`);
  const q = allocNBits(n, k, bits, blockSize);
  quantizeRowsInto(q, 0, src, dtype);
  return q;
}

/** Throws unless the tensor is a 2-D float tensor; returns its dtype and [n, k]. */
export function floatMatrix(loc: TensorLocation): { dtype: RawFloatDtype; n: number; k: number } {
  if (loc.dtype !== 'F32' && loc.dtype !== 'F16' && loc.dtype !== 'BF16') throw new ModelLoadError(`cannot quantize ${loc.name}: dtype ${loc.dtype} is not a float type`);
  if (loc.shape.length !== 2) throw new ModelLoadError(`cannot quantize ${loc.name}: shape [${loc.shape.join(', ')}] is not 2-D`);
  return { dtype: loc.dtype, n: loc.shape[0]!, k: loc.shape[1]! };
}

/**
 * Reads a 2-D float tensor's rows from its file in chunks of about `chunkBytes` (whole rows),
 * handing each to `fn` with the index of its first row; the chunk buffer is reused.
 */
export function readRowChunks(loc: TensorLocation, chunkBytes: number, fn: (row0: number, rows: Buffer) => void): void {
  const { dtype, n, k } = floatMatrix(loc);
  const rowBytes = k * BYTES[dtype];
  const chunkRows = Math.max(1, Math.floor(chunkBytes / rowBytes));
  const buf = Buffer.allocUnsafe(Math.min(n, chunkRows) * rowBytes);
  const fd = openSync(loc.file, 'r');
  try {
    for (let r = 0; r < n; r += chunkRows) {
      const len = Math.min(chunkRows, n - r) * rowBytes;
      for (let got = 0; got < len; ) {
        const m = readSync(fd, buf, got, len - got, loc.offset + r * rowBytes + got);
        if (m === 0) throw new ModelLoadError(`${loc.file}: tensor ${loc.name} is truncated`);
        got += m;
      }
      fn(r, buf.subarray(0, len));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Quantizes a 2-D checkpoint tensor read from its file in chunks of about
 * `chunkBytes`, so memory holds the quantized result plus one chunk.
 */
export function quantizeTensorFile(loc: TensorLocation, bits: NBits, blockSize: number, chunkBytes = 8 << 20): NBitsWeight {
  const { dtype, n, k } = floatMatrix(loc);
  const q = allocNBits(n, k, bits, blockSize);
  readRowChunks(loc, chunkBytes, (r, rows) => quantizeRowsInto(q, r, rows, dtype));
  checkNBits(q);
  return q;
}
