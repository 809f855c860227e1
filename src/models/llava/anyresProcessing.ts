/**
 * Port of transformers' LlavaNextImageProcessor (slow, PIL/numpy, 4.50): "anyres" tiling.
 * The image is fitted into the best of `image_grid_pinpoints`, padded, cut into tiles of the
 * crop size, and a square-stretched copy of the whole image goes first; each piece then runs
 * through CLIPImageProcessor. Bit-identical pixel_values.
 */
import type { RgbImage } from '../../multimodal/image.js';
import { resizeBicubic } from '../../multimodal/pilResample.js';
import { ClipProcessorConfig, parseClipProcessorConfig, preprocessClip } from './clipProcessing.js';
import { bad, readPreprocessorConfig } from '../../multimodal/processors/common.js';

export interface LlavaNextProcessorConfig extends ClipProcessorConfig {
  /** Candidate canvas sizes as (height, width). */
  pinpoints: Array<[number, number]>;
}

/**
 * LlavaNextImageProcessor's settings, or LlavaOnevisionImageProcessor's: OneVision has
 * `size: {height, width}` and no crop, so its pieces are resized straight to that square.
 */
export function parseLlavaNextProcessorConfig(json: unknown, source = 'preprocessor_config.json'): LlavaNextProcessorConfig {
  let clip = parseClipProcessorConfig(json, source);
  if ((json as Record<string, unknown>).crop_size === undefined && 'height' in clip.size) {
    clip = { ...clip, doCenterCrop: false, crop: { height: clip.size.height, width: clip.size.width } };
  }
  const pins = (json as Record<string, unknown>).image_grid_pinpoints;
  if (!Array.isArray(pins) || pins.length === 0 || !pins.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => Number.isInteger(x) && x > 0))) {
    bad(source, 'image_grid_pinpoints must be a list of [height, width] pairs');
  }
  return { ...clip, pinpoints: pins as Array<[number, number]> };
}

export function loadLlavaNextProcessorConfig(modelDir: string): LlavaNextProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseLlavaNextProcessorConfig(json, file);
}

/**
 * transformers' select_best_resolution: the candidate keeping the most of the image's
 * pixels once fitted, then the least wasted canvas; ties keep the earlier candidate.
 */
export function selectBestResolution(height: number, width: number, pinpoints: ReadonlyArray<readonly [number, number]>): [number, number] {
  let best: [number, number] = [pinpoints[0]![0], pinpoints[0]![1]];
  let bestEff = -1;
  let bestWaste = Infinity;
  for (const [h, w] of pinpoints) {
    const scale = Math.min(w / width, h / height);
    const eff = Math.min(Math.trunc(width * scale) * Math.trunc(height * scale), width * height);
    const waste = w * h - eff;
    if (eff > bestEff || (eff === bestEff && waste < bestWaste)) {
      best = [h, w];
      bestEff = eff;
      bestWaste = waste;
    }
  }
  return best;
}

/** The tile grid (rows, columns) an image of this size is cut into. */
export function anyresGrid(height: number, width: number, cfg: LlavaNextProcessorConfig): [number, number] {
  const [bh, bw] = selectBestResolution(height, width, cfg.pinpoints);
  return [Math.ceil(bh / cfg.crop.height), Math.ceil(bw / cfg.crop.width)];
}

/** Copies rows [y0, y0+h) and columns [x0, x0+w) of an image. */
function cropRgb(img: RgbImage, y0: number, x0: number, h: number, w: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + w) * 3), y * w * 3);
  return { width: w, height: h, data };
}

/** LlavaNextImageProcessor for one image: pixel values [1 + tiles, 3, crop, crop], base image first. */
export function preprocessLlavaNext(img: RgbImage, cfg: LlavaNextProcessorConfig): { pixelValues: Float32Array; pieces: number; grid: [number, number] } {
  const H = img.height;
  const W = img.width;
  const [th, tw] = selectBestResolution(H, W, cfg.pinpoints);
  // Fit inside the canvas (the fitted side rounded up), then pad the same amount on both sides.
  const sw = tw / W;
  const sh = th / H;
  const [nh, nw] = sw < sh ? [Math.min(Math.ceil(H * sw), th), tw] : [th, Math.min(Math.ceil(W * sh), tw)];
  const resized = nh === H && nw === W ? img : resizeBicubic(img, nw, nh);
  const py = Math.floor((th - nh) / 2);
  const px = Math.floor((tw - nw) / 2);
  const PH = nh + 2 * py;
  const PW = nw + 2 * px;
  const padded: RgbImage = { width: PW, height: PH, data: new Uint8Array(PW * PH * 3) };
  for (let y = 0; y < nh; y++) padded.data.set(resized.data.subarray(y * nw * 3, (y + 1) * nw * 3), ((y + py) * PW + px) * 3);
  const tile = cfg.crop.height;
  const pieces: RgbImage[] = [];
  // The base image: the whole image stretched to a square (shortest_edge, or OneVision's size).
  const [bh, bw] = 'shortestEdge' in cfg.size ? [cfg.size.shortestEdge, cfg.size.shortestEdge] : [cfg.size.height, cfg.size.width];
  pieces.push(W === bw && H === bh ? img : resizeBicubic(img, bw, bh));
  for (let y = 0; y < PH; y += tile) for (let x = 0; x < PW; x += tile) pieces.push(cropRgb(padded, y, x, Math.min(tile, PH - y), Math.min(tile, PW - x)));
  const per = 3 * cfg.crop.height * cfg.crop.width;
  const out = new Float32Array(pieces.length * per);
  pieces.forEach((p, i) => out.set(preprocessClip(p, cfg).pixelValues, i * per));
  return { pixelValues: out, pieces: pieces.length, grid: anyresGrid(H, W, cfg) };
}

/**
 * transformers' unpad arithmetic (unpad_image / _get_unpadded_features): the rows and columns
 * of a (rows, cols) feature map that hold the original image, as [first row, row count,
 * first column, column count]. `int(round(x, 7))` is reproduced with a rounding to 7 digits.
 */
export function unpadRegion(rows: number, cols: number, height: number, width: number): [number, number, number, number] {
  const round7 = (x: number) => Math.trunc(Math.round(x * 1e7) / 1e7);
  if (width / height > cols / rows) {
    const newH = round7(height * (cols / width));
    const pad = Math.floor((rows - newH) / 2);
    return [pad, rows - 2 * pad, 0, cols];
  }
  const newW = round7(width * (rows / height));
  const pad = Math.floor((cols - newW) / 2);
  return [0, rows, pad, cols - 2 * pad];
}

/**
 * LLaVA-OneVision's anyres_max downscale: when the unpadded map has more than `maxPatches`
 * tiles' worth of features (by 10%), its size becomes (h // ratio, w // ratio), Python's
 * float floor division.
 */
export function downscaledSize(h: number, w: number, g: number, maxPatches: number | null): [number, number] {
  if (maxPatches === null) return [h, w];
  const ratio = Math.sqrt((h * w) / (maxPatches * g * g));
  return ratio > 1.1 ? [Math.floor(h / ratio), Math.floor(w / ratio)] : [h, w];
}

/**
 * Image tokens of one image: the base image's g * g, then the unpadded (and, for OneVision,
 * downscaled) tile map with a newline per row. `g`: features per tile side.
 */
export function llavaNextTokens(height: number, width: number, cfg: LlavaNextProcessorConfig, g: number, maxPatches: number | null = null): number {
  const [gr, gc] = anyresGrid(height, width, cfg);
  const [, uh, , uw] = unpadRegion(gr * g, gc * g, height, width);
  const [h, w] = downscaledSize(uh, uw, g, maxPatches);
  return g * g + h * (w + 1);
}
