/**
 * Port of transformers' CLIPImageProcessor (the slow, PIL/numpy one, as of 4.50), used by
 * LLaVA-1.5. Bit-identical pixel_values:
 *   resize so the shortest edge is `size.shortest_edge` (the long edge truncated), PIL bicubic
 *   on uint8 -> center crop (floor offsets; zero padding where the image is smaller)
 *   -> rescale in float64 then cast to float32 -> normalise in float32 -> CHW.
 */
import { ImageError } from '../../errors.js';
import type { RgbImage } from '../../multimodal/image.js';
import { resizeBicubic } from '../../multimodal/pilResample.js';
import { PIL_BICUBIC, PixelScaling, bad, bool, channelLuts, parsePixelScaling, posInt, readPreprocessorConfig } from '../../multimodal/processors/common.js';

export interface ClipProcessorConfig extends PixelScaling {
  /** The resize target: the shortest edge, or an exact height and width. */
  size: { shortestEdge: number } | { height: number; width: number };
  crop: { height: number; width: number };
  doResize: boolean;
  doCenterCrop: boolean;
}

export function parseClipProcessorConfig(json: unknown, source = 'preprocessor_config.json'): ClipProcessorConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad(source, 'expected a JSON object');
  const j = json as Record<string, unknown>;
  const size = (j.size ?? { shortest_edge: 224 }) as Record<string, unknown>;
  const crop = (j.crop_size ?? { height: 224, width: 224 }) as Record<string, unknown>;
  if (j.resample !== undefined && j.resample !== null && j.resample !== PIL_BICUBIC) {
    bad(source, `only bicubic resampling (resample: 3) is supported, got ${JSON.stringify(j.resample)}`);
  }
  return {
    ...parsePixelScaling(j, source),
    size: 'shortest_edge' in size
      ? { shortestEdge: posInt(size.shortest_edge, 224, 'size.shortest_edge', source) }
      : { height: posInt(size.height, 224, 'size.height', source), width: posInt(size.width, 224, 'size.width', source) },
    crop: { height: posInt(crop.height, 224, 'crop_size.height', source), width: posInt(crop.width, 224, 'crop_size.width', source) },
    doResize: bool(j.do_resize, true, 'do_resize', source),
    doCenterCrop: bool(j.do_center_crop, true, 'do_center_crop', source),
  };
}

export function loadClipProcessorConfig(modelDir: string): ClipProcessorConfig {
  const { json, file } = readPreprocessorConfig(modelDir);
  return parseClipProcessorConfig(json, file);
}

/**
 * transformers' get_resize_output_image_size with default_to_square=False: the short side
 * becomes `edge`, the long side int(edge * long / short) (a float64 division, truncated).
 */
export function shortestEdgeSize(height: number, width: number, edge: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((edge * long) / short);
  return width <= height ? [newLong, edge] : [edge, newLong];
}

/** CLIPImageProcessor for one image: pixel values [3, cropH, cropW] (channel-first, RGB). */
export function preprocessClip(img: RgbImage, cfg: ClipProcessorConfig, alloc: (length: number) => Float32Array = (n) => new Float32Array(n)): { pixelValues: Float32Array; height: number; width: number } {
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
  let image = img;
  if (cfg.doResize) {
    const [h, w] = 'shortestEdge' in cfg.size ? shortestEdgeSize(img.height, img.width, cfg.size.shortestEdge) : [cfg.size.height, cfg.size.width];
    if (h !== img.height || w !== img.width) image = resizeBicubic(img, w, h);
  }
  const [H, W] = cfg.doCenterCrop ? [cfg.crop.height, cfg.crop.width] : [image.height, image.width];
  if (!cfg.doCenterCrop && (H < 1 || W < 1)) throw new ImageError('empty image');
  // transformers' center_crop: floor offsets into the image; where the crop is larger, the
  // image sits in a zero canvas with the extra pixel of an odd pad at the top/left.
  const top = Math.floor((image.height - H) / 2);
  const left = Math.floor((image.width - W) / 2);
  const padTop = H > image.height ? Math.ceil((H - image.height) / 2) : 0;
  const padLeft = W > image.width ? Math.ceil((W - image.width) / 2) : 0;
  const y0 = H > image.height ? -padTop : top;
  const x0 = W > image.width ? -padLeft : left;
  const lut = channelLuts(cfg);
  const zero = [lut[0]!, lut[256]!, lut[512]!];
  const out = alloc(3 * H * W);
  const plane = H * W;
  const { data, width: iw, height: ih } = image;
  for (let y = 0; y < H; y++) {
    const sy = y0 + y;
    for (let x = 0; x < W; x++) {
      const sx = x0 + x;
      const o = y * W + x;
      if (sy < 0 || sy >= ih || sx < 0 || sx >= iw) {
        out[o] = zero[0]!;
        out[plane + o] = zero[1]!;
        out[2 * plane + o] = zero[2]!;
        continue;
      }
      const s = (sy * iw + sx) * 3;
      out[o] = lut[data[s]!]!;
      out[plane + o] = lut[256 + data[s + 1]!]!;
      out[2 * plane + o] = lut[512 + data[s + 2]!]!;
    }
  }
  return { pixelValues: out, height: H, width: W };
}
