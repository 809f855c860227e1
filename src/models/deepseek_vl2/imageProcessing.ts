/**
 * Port of DeepSeek-VL2's image preprocessing and image-token layout (github deepseek-ai/DeepSeek-VL2
 * @ ef9f91e2, deepseek_vl2/models/processing_deepseek_vl_v2.py: select_best_resolution,
 * DeepseekVLV2Processor.tokenize_with_images, ImageTransform; modeling_deepseek_vl_v2.py:
 * DeepseekVLV2ForCausalLM.prepare_inputs_embeds). Bit-identical pixel values:
 *   - tile grid: the candidate resolution (width, height) with the largest "effective resolution"
 *     min(int(w * s) * int(h * s), w * h), s = min(cw / w, ch / h), ties to the least waste
 *     cw * ch - effective, first in list order on a full tie; only when the request has at most two
 *     images (`cropping`), else one tile (image_size x image_size);
 *   - global view = PIL ImageOps.pad(image, (S, S)) and local view = ImageOps.pad(image, (cw, ch)),
 *     both with PIL bicubic and the colour tuple(int(m * 255) for m in image_mean) (Pillow 9.4's
 *     ImageOps.contain + paste: the long side fills the box, the short side round()ed half-to-even,
 *     centred with round((box - size) * 0.5));
 *   - local tiles: the local view cut into S x S crops, row-major;
 *   - torchvision ToTensor (uint8 -> float32 / 255) then Normalize ((x - mean) / std in float32)
 *     when `normalize`; CHW.
 * Output [1 + tiles, 3, S, S]: the global view first, then the local tiles.
 *
 * The token layout (tile_tag "2D"): with h = w = ceil((S // patch_size) / downsample_ratio) tokens
 * per side of a tile, the global view gives h rows of w features each followed by an image_newline,
 * then one view_separator, then the local views as (grid height * h) rows of (grid width * w)
 * features each followed by an image_newline (global_view_pos "head"; "tail" puts the local part
 * first). Every one of these positions is one `<image>` token in the prompt.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, ModelLoadError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { resizePil } from '../../multimodal/pilResample.js';
import { bad, bool, posInt, triple } from '../../multimodal/processors/common.js';

export interface DeepseekVL2ProcessorConfig {
  /** [width, height] pairs, each a multiple of imageSize, in the config's order (the order breaks ties). */
  candidateResolutions: Array<[number, number]>;
  /** Tile side S: candidate_resolutions[0][0], as the processor takes it. */
  imageSize: number;
  patchSize: number;
  downsampleRatio: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  normalize: boolean;
  imageToken: string;
  padToken: string;
  addSpecialToken: boolean;
  sftFormat: string;
  /** From config.json: only "2D" (image_newline / view_seperator) is supported ("1D" is abandoned upstream). */
  tileTag: '2D';
  /** From config.json: where the global view goes relative to the local views. */
  globalViewPos: 'head' | 'tail';
}

function obj(v: unknown, source: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(source, 'expected a JSON object');
  return v as Record<string, unknown>;
}

/**
 * Reads processor_config.json contents (and tile_tag / global_view_pos from config.json when given).
 * Defaults are DeepseekVLV2Processor.__init__'s; candidate_resolutions, patch_size and
 * downsample_ratio have none and are required.
 */
export function parseDeepseekVL2ProcessorConfig(
  processorJson: unknown, modelConfigJson: unknown = {}, source = 'processor_config.json',
): DeepseekVL2ProcessorConfig {
  const j = obj(processorJson, source);
  const m = obj(modelConfigJson ?? {}, 'config.json');
  const cr = j.candidate_resolutions;
  if (!Array.isArray(cr) || cr.length === 0) bad(source, 'candidate_resolutions must be a non-empty list of [width, height]');
  const candidateResolutions = cr.map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2) bad(source, `candidate_resolutions[${i}] must be [width, height]`);
    return [posInt(p[0], 0, `candidate_resolutions[${i}][0]`, source), posInt(p[1], 0, `candidate_resolutions[${i}][1]`, source)] as [number, number];
  });
  const imageSize = candidateResolutions[0]![0];
  for (const [w, h] of candidateResolutions) {
    // tokenize_with_images cuts range(0, w, S) x range(0, h, S) tiles but counts w // S x h // S
    if (w % imageSize !== 0 || h % imageSize !== 0) bad(source, `candidate resolution ${w}x${h} is not a multiple of the tile size ${imageSize}`);
  }
  if (j.patch_size === undefined || j.patch_size === null) bad(source, 'patch_size is required');
  if (j.downsample_ratio === undefined || j.downsample_ratio === null) bad(source, 'downsample_ratio is required');
  const imageStd = triple(j.image_std, [0.5, 0.5, 0.5], 'image_std', source);
  if (imageStd.some((s) => Math.fround(s) === 0)) bad(source, 'image_std must not contain 0');
  const str = (v: unknown, def: string, key: string, src: string): string => {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string') bad(src, `${key} must be a string`);
    return v;
  };
  const tileTag = str(m.tile_tag, '2D', 'tile_tag', 'config.json');
  if (tileTag !== '2D') bad('config.json', `tile_tag ${JSON.stringify(tileTag)} is not supported (only "2D")`);
  const globalViewPos = str(m.global_view_pos, 'head', 'global_view_pos', 'config.json');
  if (globalViewPos !== 'head' && globalViewPos !== 'tail') bad('config.json', `global_view_pos must be "head" or "tail", got ${JSON.stringify(globalViewPos)}`);
  return {
    candidateResolutions,
    imageSize,
    patchSize: posInt(j.patch_size, 0, 'patch_size', source),
    downsampleRatio: posInt(j.downsample_ratio, 0, 'downsample_ratio', source),
    imageMean: triple(j.image_mean, [0.5, 0.5, 0.5], 'image_mean', source),
    imageStd,
    normalize: bool(j.normalize, true, 'normalize', source),
    imageToken: str(j.image_token, '<image>', 'image_token', source),
    padToken: str(j.pad_token, '<｜▁pad▁｜>', 'pad_token', source),
    addSpecialToken: bool(j.add_special_token, false, 'add_special_token', source),
    sftFormat: str(j.sft_format, 'deepseek', 'sft_format', source),
    tileTag: '2D',
    globalViewPos,
  };
}

function readJson(file: string, required: boolean): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (!required) return {};
    throw new ModelLoadError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** `<modelDir>/processor_config.json` (+ tile_tag / global_view_pos of `<modelDir>/config.json`). */
export function loadDeepseekVL2ProcessorConfig(modelDir: string): DeepseekVL2ProcessorConfig {
  const file = join(modelDir, 'processor_config.json');
  return parseDeepseekVL2ProcessorConfig(readJson(file, true), readJson(join(modelDir, 'config.json'), false), file);
}

/** Python's round() of a float: to the nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * select_best_resolution(image_size, candidate_resolutions): the [width, height] to tile. The running best
 * starts at effective 0 and waste infinity, and a tie on effective resolution with less waste replaces it,
 * so an image so thin that int(side * scale) is 0 for every candidate still gets one: the smallest-area
 * candidate (first in list order). null only for an empty list.
 */
export function selectBestResolution(width: number, height: number, candidates: ReadonlyArray<readonly [number, number]>): [number, number] | null {
  let best: [number, number] | null = null;
  let maxEffective = 0;
  let minWasted = Infinity;
  for (const [cw, ch] of candidates) {
    const scale = Math.min(cw / width, ch / height);
    const dw = Math.trunc(width * scale);
    const dh = Math.trunc(height * scale);
    const effective = Math.min(dw * dh, width * height);
    const wasted = cw * ch - effective;
    if (effective > maxEffective || (effective === maxEffective && wasted < minWasted)) {
      maxEffective = effective;
      minWasted = wasted;
      best = [cw, ch];
    }
  }
  return best;
}

/** The size PIL ImageOps.contain(image, (boxW, boxH)) resizes to (Pillow 9.4). */
export function containSize(width: number, height: number, boxW: number, boxH: number): [number, number] {
  const imRatio = width / height;
  const destRatio = boxW / boxH;
  let w = boxW;
  let h = boxH;
  if (imRatio !== destRatio) {
    if (imRatio > destRatio) {
      const nh = roundHalfEven((height / width) * boxW);
      if (nh !== boxH) h = nh;
    } else {
      const nw = roundHalfEven((width / height) * boxH);
      if (nw !== boxW) w = nw;
    }
  }
  return [w, h];
}

/** The pad colour: tuple(int(m * 255) for m in image_mean). */
export function padColour(cfg: Pick<DeepseekVL2ProcessorConfig, 'imageMean'>): [number, number, number] {
  return cfg.imageMean.map((m) => Math.trunc(m * 255)) as [number, number, number];
}

/**
 * PIL ImageOps.pad(image, (boxW, boxH), method=BICUBIC, color, centering=(0.5, 0.5)) of Pillow 9.4:
 * contain() (bicubic resize, always called), then, unless it already fills the box, pasted onto a
 * box filled with `colour` at x = round((boxW - w) * 0.5) (or y likewise).
 */
export function imageOpsPad(img: RgbImage, boxW: number, boxH: number, colour: readonly [number, number, number]): RgbImage {
  const [w, h] = containSize(img.width, img.height, boxW, boxH);
  if (w < 1 || h < 1) {
    throw new ImageError(`a ${img.width}x${img.height} image is too thin to fit ${boxW}x${boxH} (PIL would resize it to ${w}x${h})`);
  }
  const resized = resizePil(img, w, h, 'bicubic');
  if (w === boxW && h === boxH) return resized;
  const data = new Uint8Array(boxW * boxH * 3);
  for (let i = 0; i < boxW * boxH; i++) {
    data[i * 3] = colour[0];
    data[i * 3 + 1] = colour[1];
    data[i * 3 + 2] = colour[2];
  }
  const x0 = w !== boxW ? roundHalfEven((boxW - w) * 0.5) : 0;
  const y0 = w !== boxW ? 0 : roundHalfEven((boxH - h) * 0.5);
  for (let y = 0; y < h; y++) {
    data.set(resized.data.subarray(y * w * 3, (y + 1) * w * 3), ((y0 + y) * boxW + x0) * 3);
  }
  return { width: boxW, height: boxH, data };
}

/**
 * For each channel, the float32 value every uint8 level turns into: torchvision ToTensor
 * (img.to(float32).div(255)) then Normalize (tensor.sub_(mean).div_(std), float32 mean/std).
 */
export function deepseekVL2ChannelLuts(cfg: Pick<DeepseekVL2ProcessorConfig, 'imageMean' | 'imageStd' | 'normalize'>): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.imageMean[c]!);
    const std = Math.fround(cfg.imageStd[c]!);
    for (let v = 0; v < 256; v++) {
      let x = Math.fround(v / 255);
      if (cfg.normalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + v] = x;
    }
  }
  return lut;
}

/** The tile grid of one image: images_spatial_crop's [num_width_tiles, num_height_tiles]. */
export interface DeepseekVL2Grid {
  widthTiles: number;
  heightTiles: number;
}

export interface DeepseekVL2ImageInputs {
  /** [1 + tiles, 3, S, S] float32: the global view, then the local tiles row-major. */
  pixelValues: Float32Array;
  /** 1 + widthTiles * heightTiles. */
  numTiles: number;
  /** S. */
  imageSize: number;
  grid: DeepseekVL2Grid;
  /** The chosen resolution (local view size) [width, height]. */
  bestResolution: [number, number];
}

export interface DeepseekVL2Options {
  /**
   * Tile the image (select_best_resolution). The reference passes cropping = (number of images in
   * the request) <= 2; with more images every image gets a single S x S local tile.
   */
  cropping?: boolean;
  /** Gives the pixel-values array (e.g. from a pool); its old contents do not matter. */
  alloc?: (length: number) => Float32Array;
}

function writeTile(view: RgbImage, x0: number, y0: number, s: number, lut: Float32Array, out: Float32Array, o: number): void {
  const plane = s * s;
  for (let y = 0; y < s; y++) {
    let src = ((y0 + y) * view.width + x0) * 3;
    let dst = o + y * s;
    for (let x = 0; x < s; x++, src += 3, dst++) {
      out[dst] = lut[view.data[src]!]!;
      out[dst + plane] = lut[256 + view.data[src + 1]!]!;
      out[dst + 2 * plane] = lut[512 + view.data[src + 2]!]!;
    }
  }
}

/** The global and local views of one RGB image, as DeepseekVLV2Processor.tokenize_with_images makes them. */
export function preprocessDeepseekVL2(img: RgbImage, cfg: DeepseekVL2ProcessorConfig, opts: DeepseekVL2Options = {}): DeepseekVL2ImageInputs {
  if (img.width < 1 || img.height < 1) throw new ImageError('empty image');
  const s = cfg.imageSize;
  const cropping = opts.cropping ?? true;
  const best = cropping ? selectBestResolution(img.width, img.height, cfg.candidateResolutions) : [s, s] as [number, number];
  if (!best) {
    throw new ImageError(`a ${img.width}x${img.height} image fits none of the candidate resolutions (its effective resolution is 0 in all of them)`);
  }
  const [bw, bh] = best;
  const grid = { widthTiles: bw / s, heightTiles: bh / s };
  const numTiles = 1 + grid.widthTiles * grid.heightTiles;
  const colour = padColour(cfg);
  const lut = deepseekVL2ChannelLuts(cfg);
  const tileLen = 3 * s * s;
  const n = numTiles * tileLen;
  const out = opts.alloc ? opts.alloc(n) : new Float32Array(n);
  if (out.length < n) throw new RangeError(`alloc gave ${out.length} values, need ${n}`);
  const global = imageOpsPad(img, s, s, colour);
  writeTile(global, 0, 0, s, lut, out, 0);
  const local = imageOpsPad(img, bw, bh, colour);
  let t = 1;
  for (let y = 0; y < bh; y += s) {
    for (let x = 0; x < bw; x += s) writeTile(local, x, y, s, lut, out, t++ * tileLen);
  }
  return { pixelValues: out.length === n ? out : out.subarray(0, n), numTiles, imageSize: s, grid, bestResolution: [bw, bh] };
}

/** Tokens per side of one tile after the projector: ceil((S // patch_size) / downsample_ratio). */
export function deepseekVL2TokensPerSide(cfg: Pick<DeepseekVL2ProcessorConfig, 'imageSize' | 'patchSize' | 'downsampleRatio'>): number {
  return Math.ceil(Math.floor(cfg.imageSize / cfg.patchSize) / cfg.downsampleRatio);
}

/** The number of `<image>` tokens of one image: h * (w + 1) + 1 + (heightTiles * h) * (widthTiles * w + 1). */
export function deepseekVL2ImageTokenCount(grid: DeepseekVL2Grid, cfg: Pick<DeepseekVL2ProcessorConfig, 'imageSize' | 'patchSize' | 'downsampleRatio'>): number {
  const h = deepseekVL2TokensPerSide(cfg);
  return h * (h + 1) + 1 + grid.heightTiles * h * (grid.widthTiles * h + 1);
}

/** What fills an image-token position: a projector output row, an image_newline or the view_seperator. */
export const DSVL2_NEWLINE = -1;
export const DSVL2_SEPARATOR = -2;

export interface DeepseekVL2TokenLayout {
  /** Number of `<image>` tokens. */
  numTokens: number;
  /** h = w: projector tokens per tile side. */
  tokensPerSide: number;
  /**
   * Per token position: tile * h * h + row * h + col of the projector output it takes (tile 0 is the
   * global view, tiles 1.. the local tiles row-major), or DSVL2_NEWLINE / DSVL2_SEPARATOR.
   */
  source: Int32Array;
  /** Positions of the image_newline tokens, ascending. */
  newlinePositions: number[];
  separatorPosition: number;
  /** [start, end) of the global view's tokens (its newlines included). */
  globalRange: [number, number];
  /** [start, end) of the local views' tokens (their newlines included). */
  localRange: [number, number];
}

/**
 * The image-token layout of prepare_inputs_embeds (tile_tag "2D"): global view rows of h features +
 * image_newline, the view_seperator, then (heightTiles * h) rows of (widthTiles * h) features +
 * image_newline, local features taken across tiles ("(th tw) (h w) d -> (th h) (tw w) d"); for
 * global_view_pos "tail" the local part, the separator, then the global part.
 */
export function deepseekVL2TokenLayout(grid: DeepseekVL2Grid, cfg: Pick<DeepseekVL2ProcessorConfig, 'imageSize' | 'patchSize' | 'downsampleRatio' | 'globalViewPos'>): DeepseekVL2TokenLayout {
  const h = deepseekVL2TokensPerSide(cfg);
  const hw = h * h;
  const globalLen = h * (h + 1);
  const rowsL = grid.heightTiles * h;
  const colsL = grid.widthTiles * h;
  const localLen = rowsL * (colsL + 1);
  const n = globalLen + 1 + localLen;
  const source = new Int32Array(n);
  const newlinePositions: number[] = [];
  const head = cfg.globalViewPos === 'head';
  const g0 = head ? 0 : localLen + 1;
  const l0 = head ? globalLen + 1 : 0;
  let p = g0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < h; c++) source[p++] = r * h + c;
    newlinePositions.push(p);
    source[p++] = DSVL2_NEWLINE;
  }
  const sep = head ? globalLen : localLen;
  source[sep] = DSVL2_SEPARATOR;
  p = l0;
  for (let r = 0; r < rowsL; r++) {
    const tr = Math.floor(r / h);
    for (let c = 0; c < colsL; c++) {
      const tile = 1 + tr * grid.widthTiles + Math.floor(c / h);
      source[p++] = tile * hw + (r % h) * h + (c % h);
    }
    newlinePositions.push(p);
    source[p++] = DSVL2_NEWLINE;
  }
  newlinePositions.sort((a, b) => a - b);
  return {
    numTokens: n,
    tokensPerSide: h,
    source,
    newlinePositions,
    separatorPosition: sep,
    globalRange: [g0, g0 + globalLen],
    localRange: [l0, l0 + localLen],
  };
}
