import { writeFileSync } from 'node:fs';

/** A tensor to write: name, safetensors dtype, shape and raw little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32' | 'U8';
  shape: number[];
  data: Uint8Array;
}

/** A minimal safetensors file (tensors in the given order, no padding between them). */
export function writeSafetensors(file: string, tensors: RawTensor[]): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.length))]));
}
