/**
 * Typed views of checkpoint bytes for the repackers: safetensors data is
 * little-endian and its offsets need not be aligned, so a view is taken when
 * possible and a copy made otherwise.
 */
import { endianness } from 'node:os';
import { ModelLoadError } from '../../errors.js';
import { F16_TABLE } from '../safetensors.js';

/** The repackers move int32 words through typed arrays, i.e. in host byte order. */
export function requireLittleEndian(what: string): void {
  if (endianness() !== 'LE') throw new ModelLoadError(`${what} needs a little-endian host`);
}

/** I32 tensor bytes as an Int32Array (a view when aligned, else a copy). */
export function int32s(bytes: Uint8Array): Int32Array {
  requireLittleEndian('reading int32 tensors');
  if (bytes.length % 4 !== 0) throw new ModelLoadError(`${bytes.length} bytes is not a whole number of int32 values`);
  if (bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return new Int32Array(new Uint8Array(bytes).buffer);
}

/** F16 tensor bytes as their 16-bit patterns (a view when aligned, else a copy). */
export function halfBits(bytes: Uint8Array): Uint16Array {
  requireLittleEndian('reading float16 tensors');
  if (bytes.length % 2 !== 0) throw new ModelLoadError(`${bytes.length} bytes is not a whole number of float16 values`);
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  return new Uint16Array(new Uint8Array(bytes).buffer);
}

/** Checkpoint scales: float16 bit patterns (as stored by AutoAWQ / GPTQ) or float32 values. */
export type ScalesInput = Uint16Array | Float32Array;

export function scaleAt(s: ScalesInput, i: number): number {
  return s instanceof Uint16Array ? F16_TABLE[s[i]!]! : s[i]!;
}
