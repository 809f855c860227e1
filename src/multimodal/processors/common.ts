/**
 * What the image processors of every family share: reading preprocessor_config.json with
 * clear errors, and the float32 arithmetic of transformers' rescale and normalize.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../../errors.js';
import type { RgbImage } from '../image.js';
import { PilFilter, pilFilterOf } from '../pilResample.js';

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
/** transformers' IMAGENET_STANDARD_MEAN / _STD, the defaults of SigLIP-style processors. */
export const IMAGENET_STANDARD_MEAN: [number, number, number] = [0.5, 0.5, 0.5];
export const IMAGENET_STANDARD_STD: [number, number, number] = [0.5, 0.5, 0.5];
export const PIL_BILINEAR = 2;
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

/** A positive finite number (integers included). */
export function posNumber(v: unknown, def: number, key: string, source: string): number {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(source, `${key} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** The PIL filter of `resample` (PIL.Image.Resampling: 2 bilinear, 3 bicubic are ported), `def` when absent. */
export function resampleFilter(v: unknown, def: PilFilter, source: string): PilFilter {
  if (v === undefined || v === null) return def;
  const f = pilFilterOf(v);
  if (!f) bad(source, `resample must be 2 (bilinear) or 3 (bicubic), got ${JSON.stringify(v)}`);
  return f;
}

/** `{height, width}` of positive integers (`key` names it in messages). */
export function heightWidth(v: unknown, def: { height: number; width: number }, key: string, source: string): { height: number; width: number } {
  if (v === undefined || v === null) return { ...def };
  if (typeof v !== 'object' || Array.isArray(v) || !('height' in v) || !('width' in v)) {
    bad(source, `${key} must be an object with height and width, got ${JSON.stringify(v)}`);
  }
  const o = v as Record<string, unknown>;
  if (o.height === null || o.width === null) bad(source, `${key} must be an object with height and width, got ${JSON.stringify(v)}`);
  return { height: posInt(o.height, def.height, `${key}.height`, source), width: posInt(o.width, def.width, `${key}.width`, source) };
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

/**
 * The rescale and normalize keys of preprocessor_config.json, with transformers' defaults: the
 * processor class's mean and std (OpenAI CLIP's unless given), rescale by 1/255.
 */
export function parsePixelScaling(
  j: Record<string, unknown>, source: string,
  defaults: { mean: [number, number, number]; std: [number, number, number] } = { mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD },
): PixelScaling {
  const rescaleFactor = j.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) bad(source, 'rescale_factor must be a number');
  const imageStd = triple(j.image_std, defaults.std, 'image_std', source);
  if (imageStd.some((s) => s === 0)) bad(source, 'image_std must not contain 0');
  return {
    imageMean: triple(j.image_mean, defaults.mean, 'image_mean', source),
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


/** Rows [y0, y0 + h) and columns [x0, x0 + w) of an image, copied (numpy's image[y0:y0+h, x0:x0+w]). */
export function cropRgb(img: RgbImage, y0: number, x0: number, h: number, w: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const s = ((y0 + y) * img.width + x0) * 3;
    data.set(img.data.subarray(s, s + w * 3), y * w * 3);
  }
  return { width: w, height: h, data };
}
