import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from '../../src/runtime/safetensors.js';
import { fixturePath } from './paths.js';

/** Golden sets: the shared reference cases and the extra ones made the same way. */
export const GOLDEN_SETS = ['golden', 'golden-extra'] as const;

/** All case folders of a family, as [set, name]. */
export function goldenCaseNames(family: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const set of GOLDEN_SETS) {
    const dir = fixturePath(`${set}/${family}/cases`);
    if (existsSync(dir)) for (const n of readdirSync(dir).sort()) out.push([set, n]);
  }
  return out;
}

/** The images of a case, image0.png, image1.png, ... in prompt order. */
export function caseImages(dir: string): string[] {
  return readdirSync(dir).filter((f) => /^image\d+\.png$/.test(f)).sort((a, b) => parseInt(a.slice(5)) - parseInt(b.slice(5))).map((f) => join(dir, f));
}

/** Reads a golden case's oracle.json and float tensors (pixel_values may sit in a gzipped file). */
export function goldenCase(family: string, name: string, set = 'golden'): { oracle: any; tensor(name: string): Float32Array; has(name: string): boolean; dir: string } {
  const dir = fixturePath(`${set}/${family}/cases/${name}`);
  const oracle = JSON.parse(readFileSync(`${dir}/oracle.json`, 'utf8'));
  const tensors = new Map(readSafetensorsHeader(`${dir}/tensors.safetensors`).map((t) => [t.name, t]));
  const gz = `${dir}/pixel_values.safetensors.gz`;
  if (existsSync(gz)) {
    const tmp = join(mkdtempSync(join(tmpdir(), 'iris-golden-')), 'pixel_values.safetensors');
    writeFileSync(tmp, gunzipSync(readFileSync(gz)));
    for (const t of readSafetensorsHeader(tmp)) tensors.set(t.name, t);
  }
  return {
    oracle,
    dir,
    has: (n: string) => tensors.has(n),
    tensor(n: string) {
      const t = tensors.get(n);
      if (!t) throw new Error(`golden tensor ${n} missing`);
      return toFloat32(readTensorBytes(t), t.dtype);
    },
  };
}

export function goldenChatCases(family: string, set = 'golden'): any {
  return JSON.parse(readFileSync(fixturePath(`${set}/${family}/chat_cases.json`), 'utf8'));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
