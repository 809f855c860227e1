/**
 * Image bytes -> 8-bit RGB, matching what the reference pipeline (PIL + vLLM /
 * qwen-vl-utils) feeds the Qwen2-VL processor:
 *   - EXIF orientation applied (PIL ImageOps.exif_transpose),
 *   - first frame only for animated GIF/WebP (PIL opens frame 0),
 *   - embedded ICC profiles ignored (PIL's convert("RGB") does no colour management),
 *   - alpha composited onto white exactly as PIL `white.paste(image, mask=alpha)`,
 *   - greyscale replicated to RGB, 16-bit samples reduced to their high byte,
 *   - CMYK JPEGs converted with PIL's naive cmyk2rgb formula.
 * Decoding itself is done by sharp (libvips), which is 3-6x faster than pure-JS decoders.
 */
import sharp from 'sharp';
import type { Metadata, OutputInfo, Sharp } from 'sharp';
import { ImageError } from '../errors.js';
import type { RgbImage } from './image.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

export interface DecodeOptions {
  /** Reject images with more than this many pixels (width * height) before decoding them. */
  maxPixels?: number;
}

/** Identifies the four accepted formats by their magic bytes; null for anything else. */
export function sniffImageFormat(b: Uint8Array): ImageFormat | null {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 &&
      b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 6 && ascii(b, 0, 6) === 'GIF87a') return 'gif';
  if (b.length >= 6 && ascii(b, 0, 6) === 'GIF89a') return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  return null;
}

function ascii(b: Uint8Array, start: number, len: number): string {
  return String.fromCharCode(...b.subarray(start, start + len));
}

/** A short human description of unsupported bytes, for the error message. */
function describeBytes(b: Uint8Array): string {
  if (b.length === 0) return 'empty data';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'BMP';
  if (b.length >= 4 && (ascii(b, 0, 4) === 'II*\u0000' || ascii(b, 0, 4) === 'MM\u0000*')) return 'TIFF';
  if (b.length >= 12 && ascii(b, 4, 4) === 'ftyp') return `ISO media (${ascii(b, 8, 4).trim()}, e.g. HEIC/AVIF/MP4)`;
  if (b.length >= 4 && ascii(b, 0, 4) === '%PDF') return 'PDF';
  const head = new TextDecoder('utf-8', { fatal: false }).decode(b.subarray(0, 64)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || head.startsWith('<?xml')) return 'SVG/XML';
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return 'HTML';
  const hex = Array.from(b.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  return `${b.length} bytes starting ${hex}`;
}

const FORMAT_NAME: Record<ImageFormat, string> = { png: 'PNG', jpeg: 'JPEG', webp: 'WebP', gif: 'GIF' };

/** sharp input options shared by the metadata probe and the decode. */
function sharpInput(bytes: Uint8Array, limit: number | boolean): Sharp {
  return sharp(bytes, {
    pages: 1, // first frame of animations, as PIL
    page: 0,
    ignoreIcc: true, // PIL does no colour management
    // 'error' aborts on corrupt or truncated data (PIL raises on truncated files too) but
    // not on mere decoder warnings such as extraneous bytes in a JPEG.
    failOn: 'error',
    limitInputPixels: limit,
  });
}

function cause(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).trim().split('\n')[0] ?? 'unknown error';
}

/** Decodes PNG/JPEG/WebP/GIF bytes into RGB. All failures are ImageError (HTTP 400). */
export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<RgbImage> {
  const format = sniffImageFormat(bytes);
  if (!format) {
    throw new ImageError(`not a supported image (got ${describeBytes(bytes)}); expected PNG, JPEG, WebP or GIF`);
  }
  const name = FORMAT_NAME[format];
  const maxPixels = opts.maxPixels;

  // Header-only probe: refuse oversized images before allocating their pixels.
  let meta: Metadata;
  try {
    meta = await sharpInput(bytes, false).metadata();
  } catch (e) {
    throw new ImageError(`cannot decode ${name} image: ${cause(e)}`);
  }
  const { width, height } = meta;
  if (!width || !height) throw new ImageError(`cannot decode ${name} image: no dimensions in header`);
  if (maxPixels !== undefined && width * height > maxPixels) {
    throw new ImageError(
      `image is too large: ${width}x${height} = ${width * height} pixels, the limit is ${maxPixels} pixels`,
    );
  }

  const cmyk = meta.space === 'cmyk';
  let data: Buffer;
  let info: OutputInfo;
  try {
    let pipe = sharpInput(bytes, maxPixels ?? true).rotate(); // EXIF orientation
    // CMYK JPEGs: take the raw inks and convert like PIL (libvips' ICC-based conversion
    // differs by up to ~36 levels).
    if (cmyk) pipe = pipe.pipelineColourspace('cmyk').toColourspace('cmyk');
    ({ data, info } = await pipe.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new ImageError(`cannot decode ${name} image: ${cause(e)}`);
  }
  if (cmyk && info.channels === 4) return cmykToRgb(data, info.width, info.height);
  return toRgb(data, info.width, info.height, info.channels);
}

/**
 * Interleaved 1-4 channel uint8 samples -> RGB. Alpha is composited onto white with
 * PIL's paste(mask) arithmetic: out = DIV255(fg*a + 255*(255-a)), where
 * DIV255(v) = (((v + 128) >> 8) + (v + 128)) >> 8.
 */
export function toRgb(src: Uint8Array, width: number, height: number, channels: number): RgbImage {
  const n = width * height;
  if (src.length < n * channels) throw new ImageError(`decoder returned ${src.length} bytes for ${width}x${height}x${channels}`);
  // RGB already: the decoder's buffer is used as is (a copy of fresh memory costs more
  // than the decode itself on some machines).
  if (channels === 3) return { width, height, data: src.subarray(0, n * 3) };
  const out = new Uint8Array(n * 3);
  switch (channels) {
    case 1:
      for (let i = 0, o = 0; i < n; i++, o += 3) {
        const v = src[i]!;
        out[o] = v; out[o + 1] = v; out[o + 2] = v;
      }
      break;
    case 2:
      for (let i = 0, s = 0, o = 0; i < n; i++, s += 2, o += 3) {
        const v = blendOnWhite(src[s]!, src[s + 1]!);
        out[o] = v; out[o + 1] = v; out[o + 2] = v;
      }
      break;
    case 4:
      for (let i = 0, s = 0, o = 0; i < n; i++, s += 4, o += 3) {
        const a = src[s + 3]!;
        if (a === 255) {
          out[o] = src[s]!; out[o + 1] = src[s + 1]!; out[o + 2] = src[s + 2]!;
        } else {
          out[o] = blendOnWhite(src[s]!, a);
          out[o + 1] = blendOnWhite(src[s + 1]!, a);
          out[o + 2] = blendOnWhite(src[s + 2]!, a);
        }
      }
      break;
    default:
      throw new ImageError(`unsupported channel count ${channels}`);
  }
  return { width, height, data: out };
}

/** PIL's cmyk2rgb: out = nk - MULDIV255(ink, nk) with nk = 255 - black. */
export function cmykToRgb(src: Uint8Array, width: number, height: number): RgbImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  for (let i = 0, s = 0, o = 0; i < n; i++, s += 4, o += 3) {
    const nk = 255 - src[s + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = src[s + c]! * nk + 128;
      out[o + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return { width, height, data: out };
}

/** PIL's BLEND(mask, in1 = 255 (white), in2 = fg) with its DIV255 rounding. */
function blendOnWhite(fg: number, a: number): number {
  const t = fg * a + 255 * (255 - a) + 128;
  return ((t >> 8) + t) >> 8;
}
