import { createHash } from 'node:crypto';
import { ImageError } from '../errors.js';
import { decodeImage } from './decode.js';
import { RgbImage } from './image.js';
import { MediaLimits, describeSource, loadMediaBytes } from './fetchMedia.js';

export interface LoadedImage {
  image: RgbImage;
  /** sha256 of the encoded bytes: the cache key of this image. */
  hash: string;
}

export interface ImageLimits extends MediaLimits {
  /** Refuse images with more pixels than this before decoding them. */
  maxImagePixels: number;
  maxImagesPerRequest: number;
}

/** Decoded images by content hash, least recently used out first, bounded in bytes. */
export class DecodedImageCache {
  private readonly map = new Map<string, RgbImage>();
  private bytes = 0;

  constructor(private readonly maxBytes = 128 * 1024 * 1024) {}

  get(hash: string): RgbImage | undefined {
    const v = this.map.get(hash);
    if (v) {
      this.map.delete(hash);
      this.map.set(hash, v);
    }
    return v;
  }

  set(hash: string, img: RgbImage): void {
    if (img.data.byteLength > this.maxBytes || this.map.has(hash)) return;
    this.map.set(hash, img);
    this.bytes += img.data.byteLength;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.data.byteLength;
    }
  }
}

/** Loads and decodes all images of a request concurrently; the first failure names its image. */
export async function loadImages(sources: Array<string | Uint8Array>, limits: ImageLimits, cache?: DecodedImageCache, signal?: AbortSignal): Promise<LoadedImage[]> {
  if (sources.length > limits.maxImagesPerRequest) {
    throw new ImageError(`the request has ${sources.length} images; the limit is ${limits.maxImagesPerRequest}`, 'messages');
  }
  return Promise.all(
    sources.map(async (src, i) => {
      const bytes = await loadMediaBytes(src, i, limits, signal);
      const hash = createHash('sha256').update(bytes).digest('hex');
      const hit = cache?.get(hash);
      if (hit) return { image: hit, hash };
      try {
        const image = await decodeImage(bytes, { maxPixels: limits.maxImagePixels });
        cache?.set(hash, image);
        return { image, hash };
      } catch (e) {
        throw new ImageError(`image ${i + 1} (${describeSource(src)}): ${(e as Error).message}`, 'image');
      }
    }),
  );
}
