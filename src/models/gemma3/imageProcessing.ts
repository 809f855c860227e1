/**
 * Port of transformers' Gemma3ImageProcessor (the slow, PIL/numpy one, as of 4.50).
 * Bit-identical pixel_values:
 *   optional pan-and-scan: a wide (tall) enough image also gives 2..max_num_crops crops
 *   side by side (stacked), cut from the original pixels; they follow the image itself
 *   -> every piece resized to size {height, width} with PIL (bilinear in the released
 *   configs; the aspect ratio is not kept) -> rescale in float64 then cast to float32
 *   -> normalise in float32 -> CHW. Output [1 + crops, 3, height, width].
 *
 * Two things of the reference this port does not copy, both outside what it can be asked:
 *   - Gemma3Processor (the text + image processor) passes its own pan-and-scan defaults
 *     (off, 256, 4, 1.2) on every call, so through it a preprocessor_config.json that turns
 *     pan-and-scan on has no effect unless the call asks for it too. Here the config's keys
 *     count, and per-request options (Gemma3Options) replace them as call kwargs do.
 *   - The reference guesses the channel axis from the array's shape, so an image 1 or 3
 *     pixels high is read as channel-first and comes out wrong; here every image is RGB.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, ModelLoadError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { PilFilter, resizePil } from '../../multimodal/pilResample.js';
import {
  IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PixelScaling, bad, bool, channelLuts, cropRgb, heightWidth,
  parsePixelScaling, posInt, posNumber, readPreprocessorConfig, resampleFilter,
} from '../../multimodal/processors/common.js';

/** Pan-and-scan's settings (the pan_and_scan_* keys). */
export interface PanAndScanSettings {
  /** No crop may be narrower (shorter) than this. */
  minCropSize: number;
  maxNumCrops: number;
  /** Only images whose long side / short side reaches this are cropped. */
  minRatioToActivate: number;
}

export interface Gemma3ProcessorConfig extends PixelScaling {
  size: { height: number; width: number };
  resample: PilFilter;
  doPanAndScan: boolean;
  panAndScan: PanAndScanSettings;
}

/** Per-request settings, as Gemma3Processor's images_kwargs: they replace the config's. */
export interface Gemma3Options {
  doPanAndScan?: boolean;
  panAndScan?: Partial<PanAndScanSettings>;
  /** Gives the pixel-values array (e.g. from a pool); its old contents do not matter. */
  alloc?: (length: number) => Float32Array;
}

export interface Gemma3ImageInputs {
  /** [pieces, 3, height, width]: the image, then its crops (row-major order). */
  pixelValues: Float32Array;
  pieces: number;
  /** Pan-and-scan crops (pieces - 1). */
  numCrops: number;
  height: number;
  width: number;
}

/**
 * Gemma3Processor's defaults for pan-and-scan. Released configs leave the keys null, and
 * the processor passes these (or the caller's) to the image processor on every call.
 */
export const GEMMA3_PAN_AND_SCAN_DEFAULTS: Readonly<PanAndScanSettings> = { minCropSize: 256, maxNumCrops: 4, minRatioToActivate: 1.2 };

/**
 * Reads preprocessor_config.json contents. Defaults are Gemma3ImageProcessor's (size
 * 224x224, bilinear, mean and std 0.5); null pan-and-scan keys take Gemma3Processor's
 * defaults, and do_pan_and_scan null means off.
 */
export function parseGemma3ProcessorConfig(json: unknown, source = 'preprocessor_config.json'): Gemma3ProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  if (!bool(j.do_resize, true, 'do_resize', source)) bad(source, 'do_resize: false is not supported (the vision tower needs size)');
  bool(j.do_convert_rgb, true, 'do_convert_rgb', source); // images arrive as RGB either way
  const d = GEMMA3_PAN_AND_SCAN_DEFAULTS;
  return {
    ...parsePixelScaling(j, source, { mean: IMAGENET_STANDARD_MEAN, std: IMAGENET_STANDARD_STD }),
    size: heightWidth(j.size, { height: 224, width: 224 }, 'size', source),
    resample: resampleFilter(j.resample, 'bilinear', source),
    doPanAndScan: bool(j.do_pan_and_scan, false, 'do_pan_and_scan', source),
    panAndScan: {
      minCropSize: posInt(j.pan_and_scan_min_crop_size, d.minCropSize, 'pan_and_scan_min_crop_size', source),
      maxNumCrops: posInt(j.pan_and_scan_max_num_crops, d.maxNumCrops, 'pan_and_scan_max_num_crops', source),
      minRatioToActivate: posNumber(j.pan_and_scan_min_ratio_to_activate, d.minRatioToActivate, 'pan_and_scan_min_ratio_to_activate', source),
    },
  };
}

/** Loads `<modelDir>/preprocessor_config.json`. */
export function loadGemma3ProcessorConfig(modelDir: string): Gemma3ProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseGemma3ProcessorConfig(json, file);
}

function readJsonIfPresent(file: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const j: unknown = JSON.parse(text);
    if (typeof j !== 'object' || j === null || Array.isArray(j)) bad(file, 'expected a JSON object');
    return j as Record<string, unknown>;
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Soft tokens per image (and per crop): processor_config.json's image_seq_length, which
 * Gemma3Processor expands every image to, else config.json's mm_tokens_per_image (the
 * vision tower's pooled output), else 256. Where both are given they must agree.
 */
export function loadGemma3ImageSeqLength(modelDir: string): number {
  const pfile = join(modelDir, 'processor_config.json');
  const cfile = join(modelDir, 'config.json');
  const p = readJsonIfPresent(pfile);
  const c = readJsonIfPresent(cfile);
  const fromProcessor = p?.image_seq_length != null ? posInt(p.image_seq_length, 0, 'image_seq_length', pfile) : null;
  const fromModel = c?.mm_tokens_per_image != null ? posInt(c.mm_tokens_per_image, 0, 'mm_tokens_per_image', cfile) : null;
  if (fromProcessor !== null && fromModel !== null && fromProcessor !== fromModel) {
    bad(pfile, `image_seq_length ${fromProcessor} differs from mm_tokens_per_image ${fromModel} in ${cfile}`);
  }
  return fromProcessor ?? fromModel ?? 256;
}

/** A crop as rows [y, y + height) and columns [x, x + width) of the original image. */
export interface CropBox { y: number; x: number; height: number; width: number }

/**
 * Gemma3ImageProcessor.pan_and_scan's crops for an image of this size: none when the
 * aspect ratio is below the threshold or the crops would be smaller than minCropSize;
 * else n = round-half-up(long / short) crops along the long side, at most long //
 * minCropSize, clamped to [2, maxNumCrops], each ceil(long / n) long; the last one is
 * cut short at the edge, as numpy slicing does.
 */
export function panAndScanCrops(height: number, width: number, s: PanAndScanSettings): CropBox[] {
  let nw = 1;
  let nh = 1;
  if (width >= height) {
    if (width / height < s.minRatioToActivate) return [];
    nw = Math.floor(width / height + 0.5);
    nw = Math.min(Math.floor(width / s.minCropSize), nw);
    nw = Math.min(s.maxNumCrops, Math.max(2, nw));
  } else {
    if (height / width < s.minRatioToActivate) return [];
    nh = Math.floor(height / width + 0.5);
    nh = Math.min(Math.floor(height / s.minCropSize), nh);
    nh = Math.min(s.maxNumCrops, Math.max(2, nh));
  }
  const cw = Math.ceil(width / nw);
  const ch = Math.ceil(height / nh);
  if (Math.min(cw, ch) < s.minCropSize) return [];
  const crops: CropBox[] = [];
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      const y = ch * i;
      const x = cw * j;
      crops.push({ y, x, height: Math.max(0, Math.min(ch, height - y)), width: Math.max(0, Math.min(cw, width - x)) });
    }
  }
  return crops;
}

/** One piece at the target size, channel-first, into out[o ...]. */
function writePiece(img: RgbImage, lut: Float32Array, out: Float32Array, o: number): void {
  const plane = img.width * img.height;
  const { data } = img;
  for (let i = 0, s = 0; i < plane; i++, s += 3) {
    out[o + i] = lut[data[s]!]!;
    out[o + plane + i] = lut[256 + data[s + 1]!]!;
    out[o + 2 * plane + i] = lut[512 + data[s + 2]!]!;
  }
}

/** Gemma3ImageProcessor for one image: the image and its pan-and-scan crops, [pieces, 3, H, W]. */
export function preprocessGemma3(img: RgbImage, cfg: Gemma3ProcessorConfig, opts: Gemma3Options = {}): Gemma3ImageInputs {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
  if (img.width < 1 || img.height < 1) throw new ImageError('empty image');
  const pas = opts.doPanAndScan ?? cfg.doPanAndScan;
  const crops = pas ? panAndScanCrops(img.height, img.width, { ...cfg.panAndScan, ...opts.panAndScan }) : [];
  if (crops.some((c) => c.width === 0 || c.height === 0)) {
    throw new ImageError(`pan-and-scan of a ${img.width}x${img.height} image gives an empty crop; raise pan_and_scan_min_crop_size`);
  }
  const { height: H, width: W } = cfg.size;
  const lut = channelLuts(cfg);
  const per = 3 * H * W;
  const pieces = 1 + crops.length;
  const out = (opts.alloc ?? ((n) => new Float32Array(n)))(pieces * per);
  const pieceImages = [img, ...crops.map((c) => cropRgb(img, c.y, c.x, c.height, c.width))];
  pieceImages.forEach((p, i) => {
    const sized = p.width === W && p.height === H ? p : resizePil(p, W, H, cfg.resample);
    writePiece(sized, lut, out, i * per);
  });
  return { pixelValues: out, pieces, numCrops: crops.length, height: H, width: W };
}
