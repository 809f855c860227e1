/**
 * What the image processors of every family share: reading preprocessor_config.json with
 * clear errors, and the float32 arithmetic of transformers' rescale and normalize.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../../errors.js';

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
export const PIL_BICUBIC = 3;

export function bad(source: string, msg: string): never {
  throw new ModelLoadError(`${source}: ${msg}`);
}

export function posInt(v: unknown, def: number, key: string, source: string): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(source, `${key} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

export function bool(v: unknown, def: boolean, key: string, source: string): boolean {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') bad(source, `${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function triple(v: unknown, def: [number, number, number], key: string, source: string): [number, number, number] {
  if (v === undefined || v === null) return [...def];
  if (typeof v === 'number') return [v, v, v]; // transformers broadcasts a scalar to every channel
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    return [v[0], v[1], v[2]];
  }
  bad(source, `${key} must be a number or a list of 3 numbers, got ${JSON.stringify(v)}`);
}

/** The JSON of `<modelDir>/preprocessor_config.json`, and the file's path for messages. */
export function readPreprocessorConfig(modelDir: string): { json: unknown; file: string } {
  const file = join(modelDir, 'preprocessor_config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelLoadError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return { json: JSON.parse(text), file };
  } catch (e) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The rescale and normalize settings of a processor. */
export interface PixelScaling {
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
}

/** The rescale and normalize keys of preprocessor_config.json, with transformers' defaults (OpenAI CLIP's mean and std). */
export function parsePixelScaling(j: Record<string, unknown>, source: string): PixelScaling {
  const rescaleFactor = j.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) bad(source, 'rescale_factor must be a number');
  const imageStd = triple(j.image_std, OPENAI_CLIP_STD, 'image_std', source);
  if (imageStd.some((s) => s === 0)) bad(source, 'image_std must not contain 0');
  return {
    imageMean: triple(j.image_mean, OPENAI_CLIP_MEAN, 'image_mean', source),
    imageStd,
    doRescale: bool(j.do_rescale, true, 'do_rescale', source),
    rescaleFactor,
    doNormalize: bool(j.do_normalize, true, 'do_normalize', source),
  };
}

/**
 * For each channel, the float32 value every uint8 level turns into. Same arithmetic as
 * numpy: (v.astype(float64) * rescale_factor).astype(float32), then (x - mean) / std with
 * float32 mean/std and each operation rounded to float32 (Math.fround).
 */
export function channelLuts(cfg: PixelScaling): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.imageMean[c]!);
    const std = Math.fround(cfg.imageStd[c]!);
    for (let v = 0; v < 256; v++) {
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + v] = x;
    }
  }
  return lut;
}

