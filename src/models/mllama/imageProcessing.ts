/**
 * Port of transformers' MllamaImageProcessor (the slow, PIL/numpy one, as of 4.50), used by
 * Llama 3.2 Vision. Bit-identical pixel_values:
 *   choose the canvas of tiles (at most max_image_tiles of size x size) that needs the least
 *   scaling -> resize with PIL (bilinear in the released configs) to fit it, aspect ratio
 *   kept -> pad with 0 bytes at the bottom and right up to the canvas -> rescale in float64
 *   then cast to float32 -> normalise in float32 (so the padding becomes -mean/std, not 0)
 *   -> cut into tiles, row by row. The reference then stacks every image into
 *   max_image_tiles slots, the unused ones exactly 0.0; preprocessMllama does the same
 *   unless asked for the real tiles only.
 */
import { ImageError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { PilFilter, resizePil } from '../../multimodal/pilResample.js';
import {
  IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD, PixelScaling, bad, bool, channelLuts, heightWidth,
  parsePixelScaling, posInt, readPreprocessorConfig, resampleFilter,
} from '../../multimodal/processors/common.js';

export interface MllamaProcessorConfig extends PixelScaling {
  /** Tile side (size.height, which must equal size.width). */
  tileSize: number;
  maxImageTiles: number;
  resample: PilFilter;
}

export interface MllamaOptions {
  /** Fill max_image_tiles slots, the unused ones with 0.0, as the reference does (default true). */
  padTiles?: boolean;
  /** Gives the pixel-values array (e.g. from a pool); its old contents do not matter. */
  alloc?: (length: number) => Float32Array;
}

export interface MllamaImageInputs {
  /** [slots, 3, tile, tile]: slots = maxImageTiles (padTiles) or numTiles. */
  pixelValues: Float32Array;
  numTiles: number;
  /** The canvas in tiles: [high, wide]. */
  tiles: [number, number];
  /** 1-based index of `tiles` in supportedAspectRatios(maxImageTiles). */
  aspectRatioId: number;
  /** maxImageTiles entries: 1 for the real tiles (and always the first), else 0. */
  aspectRatioMask: number[];
  /** The image's size after resizing, before padding: [height, width]. */
  resized: [number, number];
}

/**
 * Reads preprocessor_config.json contents. Defaults are MllamaImageProcessor's (tile 224,
 * 4 tiles, bilinear, mean and std 0.5). Like the reference, do_resize and do_pad must stay
 * on and the tile must be square.
 */
export function parseMllamaProcessorConfig(json: unknown, source = 'preprocessor_config.json'): MllamaProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  if (!bool(j.do_resize, true, 'do_resize', source)) bad(source, 'do_resize: false is not supported (nor by MllamaImageProcessor)');
  if (!bool(j.do_pad, true, 'do_pad', source)) bad(source, 'do_pad: false is not supported (nor by MllamaImageProcessor)');
  bool(j.do_convert_rgb, true, 'do_convert_rgb', source); // images arrive as RGB either way
  const size = heightWidth(j.size, { height: 224, width: 224 }, 'size', source);
  if (size.height !== size.width) bad(source, `size must be square (height = width), got ${size.height}x${size.width}`);
  return {
    ...parsePixelScaling(j, source, { mean: IMAGENET_STANDARD_MEAN, std: IMAGENET_STANDARD_STD }),
    tileSize: size.height,
    maxImageTiles: posInt(j.max_image_tiles, 4, 'max_image_tiles', source),
    resample: resampleFilter(j.resample, 'bilinear', source),
  };
}

/** Loads `<modelDir>/preprocessor_config.json`. */
export function loadMllamaProcessorConfig(modelDir: string): MllamaProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseMllamaProcessorConfig(json, file);
}

/**
 * get_all_supported_aspect_ratios: every (a, b) with a * b <= maxTiles, a outer. The
 * reference names them (width, height) but reads them as (tiles high, tiles wide)
 * everywhere, and so does this port.
 */
export function supportedAspectRatios(maxTiles: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let a = 1; a <= maxTiles; a++) for (let b = 1; b <= maxTiles; b++) if (a * b <= maxTiles) out.push([a, b]);
  return out;
}

/**
 * get_optimal_tiled_canvas: [height, width] of the canvas. Each canvas allows the scale
 * min(canvasH / h, canvasW / w); the smallest scale >= 1 wins (upscale least), else the
 * largest one (downscale least); ties go to the smallest area, then the first listed.
 */
export function optimalTiledCanvas(height: number, width: number, maxTiles: number, tileSize: number): [number, number] {
  const canvases = supportedAspectRatios(maxTiles).map(([a, b]) => [a * tileSize, b * tileSize] as const);
  const scales = canvases.map(([ch, cw]) => {
    const sh = ch / height;
    const sw = cw / width;
    return sw > sh ? sh : sw;
  });
  const up = scales.filter((s) => s >= 1);
  const selected = up.length > 0 ? Math.min(...up) : Math.max(...scales.filter((s) => s < 1));
  let best: readonly [number, number] | null = null;
  for (let i = 0; i < canvases.length; i++) {
    if (scales[i] !== selected) continue;
    const c = canvases[i]!;
    if (best === null || c[0] * c[1] < best[0] * best[1]) best = c;
  }
  return [best![0], best![1]];
}

/**
 * get_image_size_fit_to_canvas: the resized [height, width]. Each side is first clipped to
 * [tileSize, canvas side]; the side with the smaller scale takes its clipped length and the
 * other is floor(side * scale) (at least 1, at most its clipped length).
 */
export function fitToCanvas(height: number, width: number, canvasHeight: number, canvasWidth: number, tileSize: number): [number, number] {
  const clip = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const targetW = clip(width, tileSize, canvasWidth);
  const targetH = clip(height, tileSize, canvasHeight);
  const scaleH = targetH / height;
  const scaleW = targetW / width;
  if (scaleW < scaleH) return [Math.min(Math.floor(height * scaleW) || 1, targetH), targetW];
  return [targetH, Math.min(Math.floor(width * scaleH) || 1, targetW)];
}

/** convert_aspect_ratios_to_ids for one image: the 1-based index of [high, wide]. */
export function aspectRatioId(tilesHigh: number, tilesWide: number, maxTiles: number): number {
  const i = supportedAspectRatios(maxTiles).findIndex(([a, b]) => a === tilesHigh && b === tilesWide);
  if (i < 0) throw new RangeError(`${tilesHigh}x${tilesWide} tiles is not a supported aspect ratio for ${maxTiles} tiles`);
  return i + 1;
}

/** build_aspect_ratio_mask for one image. */
export function aspectRatioMask(numTiles: number, maxTiles: number): number[] {
  return Array.from({ length: maxTiles }, (_, i) => (i === 0 || i < numTiles ? 1 : 0));
}

/** MllamaImageProcessor for one image. */
export function preprocessMllama(img: RgbImage, cfg: MllamaProcessorConfig, opts: MllamaOptions = {}): MllamaImageInputs {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
  if (img.width < 1 || img.height < 1) throw new ImageError('empty image');
  const T = cfg.tileSize;
  const [ch, cw] = optimalTiledCanvas(img.height, img.width, cfg.maxImageTiles, T);
  const th = ch / T;
  const tw = cw / T;
  const [nh, nw] = fitToCanvas(img.height, img.width, ch, cw, T);
  // PIL resizes even to the same size (a copy): no separate path needed for the bytes.
  const resized = nh === img.height && nw === img.width ? img : resizePil(img, nw, nh, cfg.resample);
  const numTiles = th * tw;
  const slots = opts.padTiles === false ? numTiles : cfg.maxImageTiles;
  const per = 3 * T * T;
  const out = (opts.alloc ?? ((n) => new Float32Array(n)))(slots * per);
  const lut = channelLuts(cfg);
  const pad = [lut[0]!, lut[256]!, lut[512]!];
  const { data } = resized;
  for (let ty = 0; ty < th; ty++) {
    for (let tx = 0; tx < tw; tx++) {
      const base = (ty * tw + tx) * per;
      for (let y = 0; y < T; y++) {
        const sy = ty * T + y;
        for (let x = 0; x < T; x++) {
          const sx = tx * T + x;
          const o = base + y * T + x;
          if (sy >= nh || sx >= nw) {
            out[o] = pad[0]!;
            out[o + T * T] = pad[1]!;
            out[o + 2 * T * T] = pad[2]!;
          } else {
            const s = (sy * nw + sx) * 3;
            out[o] = lut[data[s]!]!;
            out[o + T * T] = lut[256 + data[s + 1]!]!;
            out[o + 2 * T * T] = lut[512 + data[s + 2]!]!;
          }
        }
      }
    }
  }
  out.fill(0, numTiles * per);
  return {
    pixelValues: out,
    numTiles,
    tiles: [th, tw],
    aspectRatioId: aspectRatioId(th, tw, cfg.maxImageTiles),
    aspectRatioMask: aspectRatioMask(numTiles, cfg.maxImageTiles),
    resized: [nh, nw],
  };
}
