/**
 * Port of transformers' Qwen2VLImageProcessor (the slow, PIL/numpy one, as of 4.50),
 * used by Qwen2-VL and Qwen2.5-VL. Every step reproduces the reference arithmetic so
 * pixel_values come out bit-identical:
 *   smart_resize (Python round = half to even) -> PIL bicubic resize (pilResample)
 *   -> rescale in float64 then cast to float32 -> normalise in float32
 *   -> repeat the still image into temporal_patch_size frames -> patch flattening.
 */
import { ImageError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { resizeBicubic } from '../../multimodal/pilResample.js';
import { ScratchBytes } from '../../multimodal/scratchBytes.js';
import { PIL_BICUBIC, bad, bool, channelLuts, parsePixelScaling, posInt, readPreprocessorConfig } from '../../multimodal/processors/common.js';

/** The fields of preprocessor_config.json this processor uses, with defaults applied. */
export interface Qwen2VLProcessorConfig {
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  doResize: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
}

export interface Qwen2VLOverrides {
  minPixels?: number;
  maxPixels?: number;
}

export interface Qwen2VLImageInputs {
  /** [numPatches, 3 * temporalPatchSize * patchSize * patchSize], row-major. */
  pixelValues: Float32Array;
  /** (grid_t, grid_h, grid_w) in patches. */
  gridThw: [number, number, number];
  /** grid_t * grid_h * grid_w / mergeSize^2: the number of <|image_pad|> tokens. */
  numImageTokens: number;
}

/** Python's round(): nearest integer, ties to even (not Math.round's ties toward +inf). */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for doubles
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * transformers' smart_resize: (height, width) -> (h_bar, w_bar), both multiples of
 * `factor`, with h_bar * w_bar within [minPixels, maxPixels] and the aspect ratio kept.
 * Errors follow transformers 4.50: sides shorter than `factor`, aspect ratio above 200.
 * Newer transformers also clamp the downscale branch to at least `factor`; that only
 * matters where 4.50 would return a 0-sized side, so it is applied here too.
 */
export function smartResize(
  height: number, width: number, factor = 28, minPixels = 56 * 56, maxPixels = 14 * 14 * 4 * 1280,
): [number, number] {
  if (height < factor || width < factor) {
    throw new ImageError(`image is too small: height ${height} or width ${width} is below ${factor} pixels`);
  }
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new ImageError(
      `absolute aspect ratio must be smaller than 200, got ${Math.max(height, width) / Math.min(height, width)}`,
    );
  }
  let hBar = pyRound(height / factor) * factor;
  let wBar = pyRound(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}

/**
 * Reads preprocessor_config.json contents. Pixel limits come from `min_pixels` /
 * `max_pixels` when present (they win, as in transformers), else from
 * `size: {shortest_edge, longest_edge}`, else the transformers defaults.
 */
export function parseQwen2VLProcessorConfig(json: unknown, source = 'preprocessor_config.json'): Qwen2VLProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  let minPixels = 56 * 56;
  let maxPixels = 28 * 28 * 1280;
  if (j.size !== undefined && j.size !== null) {
    const size = j.size as Record<string, unknown>;
    if (typeof size !== 'object' || !('shortest_edge' in size) || !('longest_edge' in size)) {
      bad(source, "size must contain 'shortest_edge' and 'longest_edge' keys");
    }
    minPixels = posInt(size.shortest_edge, minPixels, 'size.shortest_edge', source);
    maxPixels = posInt(size.longest_edge, maxPixels, 'size.longest_edge', source);
  }
  minPixels = posInt(j.min_pixels, minPixels, 'min_pixels', source);
  maxPixels = posInt(j.max_pixels, maxPixels, 'max_pixels', source);
  if (j.resample !== undefined && j.resample !== null && j.resample !== PIL_BICUBIC) {
    bad(source, `only bicubic resampling (resample: 3) is supported, got ${JSON.stringify(j.resample)}`);
  }
  return {
    ...parsePixelScaling(j, source),
    minPixels,
    maxPixels,
    patchSize: posInt(j.patch_size, 14, 'patch_size', source),
    temporalPatchSize: posInt(j.temporal_patch_size, 2, 'temporal_patch_size', source),
    mergeSize: posInt(j.merge_size, 2, 'merge_size', source),
    doResize: bool(j.do_resize, true, 'do_resize', source),
  };
}

/** Loads `<modelDir>/preprocessor_config.json`. */
export function loadQwen2VLProcessorConfig(modelDir: string): Qwen2VLProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseQwen2VLProcessorConfig(json, file);
}

/**
 * One patch: for each channel its P x P normalised values, row-major, from the HWC
 * image (the three planes filled in one pass over the pixels), each plane then copied
 * T - 1 more times (the still image repeated over the temporal patch). A separate
 * small function so V8 optimises it as a hot function rather than on-stack-replacing
 * the caller's loop nest (which deoptimised on not-yet-run code).
 */
function writePatch(
  data: Uint8Array, s0: number, stride: number, P: number, T: number, lut: Float32Array, out: Float32Array, o: number,
): void {
  const PP = P * P;
  const plane = T * PP;
  let d0 = o;
  let d1 = o + plane;
  let d2 = o + 2 * plane;
  for (let py = 0; py < P; py++) {
    let s = s0 + py * stride;
    for (let px = 0; px < P; px++, s += 3) {
      out[d0++] = lut[data[s]!]!;
      out[d1++] = lut[256 + data[s + 1]!]!;
      out[d2++] = lut[512 + data[s + 2]!]!;
    }
  }
  for (let c = 0; c < 3; c++) {
    const p0 = o + c * plane;
    for (let t = 1; t < T; t++) out.copyWithin(p0 + t * PP, p0, p0 + PP);
  }
}

/** The resized image: read only while the patches are written below. */
const resizedScratch = new ScratchBytes(32 << 20);

/** Qwen2VLImageProcessor for one still image. */
export function preprocessQwen2VL(
  img: RgbImage, cfg: Qwen2VLProcessorConfig, overrides: Qwen2VLOverrides = {},
  alloc: (length: number) => Float32Array = (n) => new Float32Array(n),
): Qwen2VLImageInputs {
  const P = cfg.patchSize;
  const M = cfg.mergeSize;
  const T = cfg.temporalPatchSize;
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
  let image = img;
  if (cfg.doResize) {
    const [h, w] = smartResize(
      img.height, img.width, P * M,
      overrides.minPixels ?? cfg.minPixels, overrides.maxPixels ?? cfg.maxPixels,
    );
    if (h !== img.height || w !== img.width) image = resizeBicubic(img, w, h, undefined, resizedScratch.get(w * h * 3));
  }
  const { width: W, height: H, data } = image;
  if (H % (P * M) !== 0 || W % (P * M) !== 0) {
    throw new ImageError(`image size ${W}x${H} is not a multiple of ${P * M} (do_resize is off)`);
  }
  const gridH = H / P;
  const gridW = W / P;
  const gridT = 1; // one frame, repeated to T frames below
  const lut = channelLuts(cfg);

  const PP = P * P;
  const rowLen = 3 * T * PP;
  const numPatches = gridT * gridH * gridW;
  const out = alloc(numPatches * rowLen); // every element is written below
  const stride = W * 3;
  // Row order (t, block-row, block-col, row-in-block, col-in-block); each row is
  // (channel, time, row-in-patch, col-in-patch). Time copies are identical.
  let o = 0;
  for (let bh = 0; bh < gridH / M; bh++) {
    for (let bw = 0; bw < gridW / M; bw++) {
      for (let mh = 0; mh < M; mh++) {
        const y0 = (bh * M + mh) * P;
        for (let mw = 0; mw < M; mw++) {
          const x0 = (bw * M + mw) * P;
          writePatch(data, y0 * stride + x0 * 3, stride, P, T, lut, out, o);
          o += rowLen;
        }
      }
    }
  }
  return { pixelValues: out, gridThw: [gridT, gridH, gridW], numImageTokens: numPatches / (M * M) };
}
