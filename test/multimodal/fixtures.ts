/** Paths and index of the Pillow-generated fixtures in test/fixtures/pil (see index.json). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** test/fixtures, resolved from dist/test/multimodal/ back to the source tree. */
export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
export const PIL_DIR = `${FIXTURES}pil/`;

export interface ResizeCase { name: string; input: string; inSize: [number, number]; outSize: [number, number]; expected: string }
export interface DecodeCase { name: string; input: string; size: [number, number]; expected: string; tolerance: number; note?: string }
export interface QwenCase {
  input: string; minPixels: number; maxPixels: number; gridThw: [number, number, number];
  shape: [number, number]; sha256: string; first4: number[];
}
export interface PilIndex { pillow: string; resize: ResizeCase[]; decode: DecodeCase[]; qwen2vl: QwenCase[] }

export const pilIndex: PilIndex = JSON.parse(readFileSync(`${PIL_DIR}index.json`, 'utf8'));

export function readPil(name: string): Uint8Array {
  return new Uint8Array(readFileSync(PIL_DIR + name));
}

/** Number of differing bytes and the largest absolute difference. */
export function byteDiff(a: Uint8Array, b: Uint8Array): { count: number; max: number } {
  let count = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d) {
      count++;
      if (d > max) max = d;
    }
  }
  return { count, max };
}
