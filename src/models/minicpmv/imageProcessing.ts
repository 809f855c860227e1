/**
 * Port of MiniCPM-V 2.6's image processor and prompt expansion (the Hub's remote code of
 * openbmb/MiniCPM-V-2_6: image_processing_minicpmv.py MiniCPMVImageProcessor and the text
 * part of processing_minicpmv.py MiniCPMVProcessor). Bit-identical pixel values and
 * placeholder text:
 *   - slice_mode (the released setting): choose a grid of slices by the log aspect ratio
 *     (get_sliced_grid; at most max_slice_nums); the image itself ("source") is resized with
 *     PIL bicubic to about scale_resolution^2 pixels, sides rounded to the patch (Python's
 *     round: half to even); if there is a grid, the image is also resized to the "refine"
 *     size and cut into cols x rows slices, each again about scale_resolution^2 pixels.
 *     An image of at most scale_resolution^2 pixels is not sliced, and is upscaled.
 *   - slice_mode off: the image is used as it is (no resize); the pixels beyond a multiple
 *     of the patch are dropped (the reference's unfold does that).
 *   - every piece: x / 255 in float32, (x - mean) / std in float32, then laid out patch by
 *     patch as the model takes it (reshape_by_patch): [3, patch, L * patch] with
 *     L = tgt_h * tgt_w patches in row-major order; element [c, r, l * patch + q] is pixel
 *     (row py * patch + r, column px * patch + q) of patch l = py * tgt_w + px.
 *   - the prompt: each '(<image>./</image>)' becomes [<image_id>i</image_id>] <image> +
 *     <unk> x image_feature_size + </image>, then (slice_mode, with a grid) one
 *     <slice> + <unk> x image_feature_size + </slice> per slice, the slices of a row
 *     concatenated and the rows joined by '\n'.
 *
 * Where this port does not copy the reference (inputs it rejects):
 *   - preprocess guesses the channel axis of a prompt's first image from its shape, so a
 *     first image 1 or 3 px high is read as channel-first and the reference raises; here
 *     every image is RGB, and such images give what the reference computes for them when
 *     the channel axis is known (test/fixtures/processors/minicpmv, referenceRaises).
 *   - the processor counts image tags with re.findall('(<image>./</image>)'), where '.' is
 *     any character, but splits the text on the literal tag; text holding '<image>X</image>'
 *     makes the reference fail an assertion. Here only the literal tag counts.
 *   - slice_mode off with an image smaller than one patch gives the reference an empty
 *     piece; here it is an ImageError.
 */
import { ImageError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { resizePil } from '../../multimodal/pilResample.js';
import {
  IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, bad, bool, channelLuts, cropRgb, posInt, readPreprocessorConfig, triple,
} from '../../multimodal/processors/common.js';

/** The tag the chat prompt carries for each image, replaced by the image's placeholder. */
export const MINICPMV_IMAGE_TAG = '(<image>./</image>)';

/** The placeholder's token strings (preprocessor_config.json im_start, ..., unk). */
export interface MiniCPMVPlaceholderTokens {
  imStart: string;
  imEnd: string;
  sliceStart: string;
  sliceEnd: string;
  unk: string;
  imIdStart: string;
  imIdEnd: string;
}

export interface MiniCPMVProcessorConfig {
  maxSliceNums: number;
  scaleResolution: number;
  patchSize: number;
  /** <unk> tokens per image or slice: the resampler's query count (config.json query_num). */
  imageFeatureSize: number;
  useImageId: boolean;
  sliceMode: boolean;
  normMean: [number, number, number];
  normStd: [number, number, number];
  tokens: MiniCPMVPlaceholderTokens;
  version: number;
}

/** Per-request settings, as MiniCPMV.chat(max_slice_nums=..., use_image_id=...) passes them to the processor. */
export interface MiniCPMVOptions {
  maxSliceNums?: number;
  useImageId?: boolean;
  /** Gives each piece's pixel-values array (e.g. from a pool); its old contents do not matter. */
  alloc?: (length: number) => Float32Array;
}

/** One vision input: the source image or a slice. */
export interface MiniCPMVSlice {
  /** [3, patch, tgtH * tgtW * patch] float32, see the file comment. */
  pixelValues: Float32Array;
  /** Size in patches: [tgtH, tgtW] (the reference's tgt_sizes row). */
  tgtSize: [number, number];
}

export interface MiniCPMVImageInputs {
  /** The source image first, then the slices row by row (top row left to right, ...). */
  slices: MiniCPMVSlice[];
  /** [cols, rows], or null when the image is not sliced (or slice_mode is off). */
  grid: [number, number] | null;
  /** The source image's size after resizing: [width, height]. */
  sourceSize: [number, number];
  /** The size the image is resized to before it is cut into slices: [width, height]; null without a grid. */
  refineSize: [number, number] | null;
  /** slices.map((s) => s.tgtSize). */
  tgtSizes: Array<[number, number]>;
}

function tokenString(v: unknown, def: string, key: string, source: string): string {
  if (v === undefined || v === null) return def;
  if (typeof v !== 'string' || v.length === 0) bad(source, `${key} must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Reads preprocessor_config.json contents. Defaults are MiniCPMVImageProcessor's: max_slice_nums
 * 9, scale_resolution 448, patch_size 14, image_feature_size 64, slice_mode true, norm mean and
 * std 0.5, and use_image_id **false** (the released config sets it true, as config.json does).
 */
export function parseMiniCPMVProcessorConfig(json: unknown, source = 'preprocessor_config.json'): MiniCPMVProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  const normStd = triple(j.norm_std, IMAGENET_STANDARD_STD, 'norm_std', source);
  if (normStd.some((s) => s === 0)) bad(source, 'norm_std must not contain 0');
  const version = j.version ?? 2.0;
  if (typeof version !== 'number' || !Number.isFinite(version)) bad(source, `version must be a number, got ${JSON.stringify(version)}`);
  return {
    maxSliceNums: posInt(j.max_slice_nums, 9, 'max_slice_nums', source),
    scaleResolution: posInt(j.scale_resolution, 448, 'scale_resolution', source),
    patchSize: posInt(j.patch_size, 14, 'patch_size', source),
    imageFeatureSize: posInt(j.image_feature_size, 64, 'image_feature_size', source),
    useImageId: bool(j.use_image_id, false, 'use_image_id', source),
    sliceMode: bool(j.slice_mode, true, 'slice_mode', source),
    normMean: triple(j.norm_mean, IMAGENET_STANDARD_MEAN, 'norm_mean', source),
    normStd,
    tokens: {
      imStart: tokenString(j.im_start, '<image>', 'im_start', source),
      imEnd: tokenString(j.im_end, '</image>', 'im_end', source),
      sliceStart: tokenString(j.slice_start, '<slice>', 'slice_start', source),
      sliceEnd: tokenString(j.slice_end, '</slice>', 'slice_end', source),
      unk: tokenString(j.unk, '<unk>', 'unk', source),
      imIdStart: tokenString(j.im_id_start, '<image_id>', 'im_id_start', source),
      imIdEnd: tokenString(j.im_id_end, '</image_id>', 'im_id_end', source),
    },
    version,
  };
}

/** Loads `<modelDir>/preprocessor_config.json`. */
export function loadMiniCPMVProcessorConfig(modelDir: string): MiniCPMVProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseMiniCPMVProcessorConfig(json, file);
}

/** Python's round() of a float: to the nearest integer, halves to the even one. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for doubles
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** ensure_divide: the nearest multiple of `patch` (half to even), at least one patch. */
export function ensureDivide(length: number, patch: number): number {
  return Math.max(roundHalfEven(length / patch) * patch, patch);
}

/**
 * find_best_resize: an image of more than scale^2 pixels (or any, with allowUpscale) takes
 * height = int(scale / sqrt(w / h)), width = int(height * w / h); both then go to a multiple
 * of the patch. Sizes may be fractional (get_refine_size passes them so). Returns [width, height].
 */
export function findBestResize(width: number, height: number, scale: number, patch: number, allowUpscale: boolean): [number, number] {
  let w = width;
  let h = height;
  if (width * height > scale * scale || allowUpscale) {
    const r = width / height;
    h = Math.trunc(scale / Math.sqrt(r));
    w = Math.trunc(h * r);
  }
  return [ensureDivide(w, patch), ensureDivide(h, patch)];
}

/** get_refine_size: the size the image is resized to before it is cut by `grid` ([cols, rows]). Returns [width, height]. */
export function getRefineSize(width: number, height: number, grid: [number, number], scale: number, patch: number): [number, number] {
  const [gx, gy] = grid;
  const refineWidth = ensureDivide(width, gx);
  const refineHeight = ensureDivide(height, gy);
  const [bw, bh] = findBestResize(refineWidth / gx, refineHeight / gy, scale, patch, true);
  return [bw * gx, bh * gy];
}

/**
 * get_sliced_grid: null when min(ceil(w * h / scale^2), maxSliceNums) <= 1; else among the
 * grids [m, n / m] of n in {multiple - 1, multiple, multiple + 1} (n != 1, n <= maxSliceNums),
 * in that order and m ascending, the first with the smallest |log(w / h) - log(m / (n / m))|.
 * Returns [cols, rows].
 */
export function getSlicedGrid(width: number, height: number, maxSliceNums: number, scale: number): [number, number] | null {
  const logRatio = Math.log(width / height);
  const ratio = (width * height) / (scale * scale);
  const multiple = Math.min(Math.ceil(ratio), maxSliceNums);
  if (multiple <= 1) return null;
  let best: [number, number] = [1, 1];
  let minError = Infinity;
  for (const n of [multiple - 1, multiple, multiple + 1]) {
    if (n === 1 || n > maxSliceNums) continue;
    for (let m = 1; m <= n; m++) {
      if (n % m !== 0) continue;
      const error = Math.abs(logRatio - Math.log(m / (n / m)));
      if (error < minError) {
        best = [m, n / m];
        minError = error;
      }
    }
  }
  return best;
}

function checkMaxSliceNums(v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`max_slice_nums must be a positive integer, got ${v}`);
  return v;
}

/** The slicing decisions for an image of this size (no pixels). */
export function minicpmvSlicing(
  width: number, height: number, cfg: MiniCPMVProcessorConfig, opts: Pick<MiniCPMVOptions, 'maxSliceNums'> = {},
): { grid: [number, number] | null; sourceSize: [number, number]; refineSize: [number, number] | null } {
  const msn = checkMaxSliceNums(opts.maxSliceNums ?? cfg.maxSliceNums);
  if (!cfg.sliceMode) return { grid: null, sourceSize: [width, height], refineSize: null };
  const { scaleResolution: s, patchSize: p } = cfg;
  const grid = getSlicedGrid(width, height, msn, s);
  if (!grid) return { grid: null, sourceSize: findBestResize(width, height, s, p, true), refineSize: null };
  return { grid, sourceSize: findBestResize(width, height, s, p, false), refineSize: getRefineSize(width, height, grid, s, p) };
}

/** One piece, normalised and laid out patch by patch: [3, p, L * p]. */
function writePatches(img: RgbImage, p: number, lut: Float32Array, out: Float32Array): [number, number] {
  const th = Math.floor(img.height / p);
  const tw = Math.floor(img.width / p);
  const L = th * tw;
  const rowLen = L * p; // one (c, r) row of the output
  const plane = p * rowLen;
  const { data, width } = img;
  for (let py = 0; py < th; py++) {
    for (let px = 0; px < tw; px++) {
      const l = py * tw + px;
      for (let r = 0; r < p; r++) {
        let s = ((py * p + r) * width + px * p) * 3;
        const o = r * rowLen + l * p;
        for (let q = 0; q < p; q++, s += 3) {
          out[o + q] = lut[data[s]!]!;
          out[plane + o + q] = lut[256 + data[s + 1]!]!;
          out[2 * plane + o + q] = lut[512 + data[s + 2]!]!;
        }
      }
    }
  }
  return [th, tw];
}

/**
 * MiniCPMVImageProcessor.preprocess for one image: the source image and its slices, each
 * [3, patch, tgtH * tgtW * patch] float32, with their tgt_sizes.
 */
export function preprocessMiniCPMV(img: RgbImage, cfg: MiniCPMVProcessorConfig, opts: MiniCPMVOptions = {}): MiniCPMVImageInputs {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
  if (img.width < 1 || img.height < 1) throw new ImageError('empty image');
  const p = cfg.patchSize;
  const { grid, sourceSize, refineSize } = minicpmvSlicing(img.width, img.height, cfg, opts);
  const pieces: RgbImage[] = [];
  if (!cfg.sliceMode) {
    if (img.width < p || img.height < p) {
      throw new ImageError(`a ${img.width}x${img.height} image is smaller than one ${p}x${p} patch (slice_mode is off, so it is not resized)`);
    }
    pieces.push(img);
  } else {
    const resize = (w: number, h: number) => resizePil(img, w, h, 'bicubic');
    pieces.push(resize(sourceSize[0], sourceSize[1]));
    if (grid && refineSize) {
      const refined = resize(refineSize[0], refineSize[1]);
      const sw = Math.trunc(refineSize[0] / grid[0]);
      const sh = Math.trunc(refineSize[1] / grid[1]);
      for (let y = 0; y < refineSize[1]; y += sh) {
        for (let x = 0; x < refineSize[0]; x += sw) pieces.push(cropRgb(refined, y, x, sh, sw));
      }
    }
  }
  const lut = channelLuts({ imageMean: cfg.normMean, imageStd: cfg.normStd, doRescale: true, rescaleFactor: 1 / 255, doNormalize: true });
  const alloc = opts.alloc ?? ((n: number) => new Float32Array(n));
  const slices = pieces.map((piece): MiniCPMVSlice => {
    const n = 3 * p * p * Math.floor(piece.height / p) * Math.floor(piece.width / p);
    const pixelValues = alloc(n);
    if (pixelValues.length !== n) throw new RangeError(`alloc gave ${pixelValues.length} floats, expected ${n}`);
    return { pixelValues, tgtSize: writePatches(piece, p, lut, pixelValues) };
  });
  return { slices, grid, sourceSize, refineSize, tgtSizes: slices.map((s) => s.tgtSize) };
}

/** get_grid_placeholder: one <slice> run per slice, the runs of a row concatenated, rows joined by '\n'; '' for null. */
export function minicpmvGridPlaceholder(grid: [number, number] | null, cfg: MiniCPMVProcessorConfig): string {
  if (!grid) return '';
  const t = cfg.tokens;
  const one = t.sliceStart + t.unk.repeat(cfg.imageFeatureSize) + t.sliceEnd;
  return Array.from({ length: grid[1] }, () => one.repeat(grid[0])).join('\n');
}

/**
 * get_slice_image_placeholder for image `imageIndex` (0-based, counted over the whole prompt)
 * sliced by `grid`: [<image_id>i</image_id>] <image> <unk> x n </image>, then the grid's slice
 * runs when slice_mode is on. The grid is the one minicpmvSlicing gives (with the request's
 * max_slice_nums).
 */
export function minicpmvImagePlaceholder(
  grid: [number, number] | null, cfg: MiniCPMVProcessorConfig, opts: { imageIndex?: number; useImageId?: boolean } = {},
): string {
  const t = cfg.tokens;
  let s = t.imStart + t.unk.repeat(cfg.imageFeatureSize) + t.imEnd;
  if (opts.useImageId ?? cfg.useImageId) s = `${t.imIdStart}${opts.imageIndex ?? 0}${t.imIdEnd}` + s;
  if (cfg.sliceMode) s += minicpmvGridPlaceholder(grid, cfg);
  return s;
}

/**
 * The grid get_slice_image_placeholder uses: get_sliced_grid of the image size, whether or
 * not slice_mode is on (with slice_mode off it is then not written).
 */
export function minicpmvPlaceholderGrid(width: number, height: number, cfg: MiniCPMVProcessorConfig, opts: Pick<MiniCPMVOptions, 'maxSliceNums'> = {}): [number, number] | null {
  return getSlicedGrid(width, height, checkMaxSliceNums(opts.maxSliceNums ?? cfg.maxSliceNums), cfg.scaleResolution);
}

/**
 * The text MiniCPMVProcessor tokenizes: the i-th '(<image>./</image>)' of `text` replaced by
 * image i's placeholder (image sizes [width, height] in prompt order).
 */
export function expandMiniCPMVPrompt(
  text: string, imageSizes: ReadonlyArray<readonly [number, number]>, cfg: MiniCPMVProcessorConfig,
  opts: Pick<MiniCPMVOptions, 'maxSliceNums' | 'useImageId'> = {},
): string {
  const chunks = text.split(MINICPMV_IMAGE_TAG);
  if (chunks.length - 1 !== imageSizes.length) {
    throw new ImageError(`the prompt has ${chunks.length - 1} image tags for ${imageSizes.length} images`);
  }
  let out = '';
  imageSizes.forEach(([w, h], i) => {
    out += chunks[i]! + minicpmvImagePlaceholder(minicpmvPlaceholderGrid(w, h, cfg, opts), cfg, { imageIndex: i, useImageId: opts.useImageId });
  });
  return out + chunks[chunks.length - 1]!;
}
