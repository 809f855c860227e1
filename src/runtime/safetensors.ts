import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { ModelLoadError } from '../errors.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Where one tensor's bytes live: a file and an absolute byte range in it. */
export interface TensorLocation {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  file: string;
  /** Absolute offset of the first byte in `file`. */
  offset: number;
  length: number;
}

/**
 * Reads the header of a .safetensors file: 8-byte little-endian header size,
 * a JSON header, then raw little-endian data. Only the header is read; the data
 * stays on disk for ONNX Runtime to load as external initializers.
 */
export function readSafetensorsHeader(file: string): TensorLocation[] {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ModelLoadError(`cannot open weights file ${file}: ${(e as Error).message}`);
  }
  try {
    const size = statSync(file).size;
    const lenBuf = Buffer.alloc(8);
    if (readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new ModelLoadError(`${file}: not a safetensors file (too short)`);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > size) {
      throw new ModelLoadError(`${file}: not a safetensors file (header length ${headerLen})`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch {
      throw new ModelLoadError(`${file}: safetensors header is not valid JSON`);
    }
    const base = 8 + headerLen;
    const out: TensorLocation[] = [];
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const dtype = info.dtype as SafetensorsDtype;
      if (!(dtype in DTYPE_BYTES)) throw new ModelLoadError(`${file}: tensor ${name} has unsupported dtype ${info.dtype}`);
      const [a, b] = info.data_offsets;
      const numel = info.shape.reduce((x, y) => x * y, 1);
      if (b - a !== numel * DTYPE_BYTES[dtype] || base + b > size) {
        throw new ModelLoadError(`${file}: tensor ${name} has inconsistent data offsets`);
      }
      out.push({ name, dtype, shape: info.shape, file, offset: base + a, length: b - a });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Reads one tensor's raw bytes (used for small tensors and tests, not for weights). */
export function readTensorBytes(loc: TensorLocation): Buffer {
  const fd = openSync(loc.file, 'r');
  try {
    const buf = Buffer.alloc(loc.length);
    readSync(fd, buf, 0, loc.length, loc.offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** float16 bit pattern -> float32 value, for all 65,536 patterns. */
export const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Decodes a tensor's bytes to float32 (F32, F16, BF16, F64). */
export function toFloat32(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const n = bytes.length / DTYPE_BYTES[dtype];
  const aligned = new Uint8Array(bytes); // copy: safetensors offsets need not be aligned
  switch (dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer, 0, n);
    case 'F64':
      return Float32Array.from(new Float64Array(aligned.buffer, 0, n));
    case 'F16': {
      const u = new Uint16Array(aligned.buffer, 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = F16_TABLE[u[i]!]!;
      return out;
    }
    case 'BF16': {
      const u = new Uint16Array(aligned.buffer, 0, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = u[i]! << 16;
      return new Float32Array(out.buffer);
    }
    default:
      throw new ModelLoadError(`cannot convert ${dtype} to float32`);
  }
}
