/**
 * The image processor references in test/fixtures/processors/<family>/ (written by
 * tools/references/processors_gemma3_mllama.py): index.json, PNG inputs, expected arrays.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeImage } from '../../src/multimodal/decode.js';
import type { RgbImage } from '../../src/multimodal/image.js';
import { fixturePath } from './paths.js';

/** What every case records of its expected output. */
export interface ExpectedOutput {
  sha256: string;
  /** [flat index, value] pairs. */
  samples: Array<[number, number]>;
  /** The stored array's file (.f32 float32 LE, .rgb uint8), null where only the hash is kept. */
  expected: string | null;
}

export function processorIndex<T>(family: string): T {
  return JSON.parse(readFileSync(fixturePath(`processors/${family}/index.json`), 'utf8')) as T;
}

export async function processorInput(family: string, file: string): Promise<RgbImage> {
  return decodeImage(readFileSync(fixturePath(`processors/${family}/${file}`)));
}

function bytesOf(a: Float32Array | Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function sha256(a: Float32Array | Uint8Array): string {
  return createHash('sha256').update(bytesOf(a)).digest('hex');
}

/**
 * Asserts `got` equals the reference exactly: element by element where the array is
 * stored (with the count and worst difference on failure), and by samples and hash always.
 */
export function assertExact(family: string, got: Float32Array | Uint8Array, want: ExpectedOutput, label: string): void {
  if (want.expected) {
    const raw = readFileSync(fixturePath(`processors/${family}/${want.expected}`));
    const ref = got instanceof Float32Array
      ? new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))
      : new Uint8Array(raw);
    assert.equal(got.length, ref.length, `${label}: length`);
    let count = 0;
    let max = 0;
    let first = -1;
    for (let i = 0; i < ref.length; i++) {
      if (Object.is(got[i], ref[i])) continue;
      count++;
      if (first < 0) first = i;
      max = Math.max(max, Math.abs(got[i]! - ref[i]!));
    }
    assert.equal(count, 0, `${label}: ${count} of ${ref.length} values differ (max ${max}, first at ${first}: ${got[first]} vs ${ref[first]})`);
  }
  for (const [i, v] of want.samples) assert.ok(Object.is(got[i], v), `${label}: value ${i} is ${got[i]}, expected ${v}`);
  assert.equal(sha256(got), want.sha256, `${label}: sha256 of the output`);
}
