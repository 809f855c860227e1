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

/** Loads and decodes all images of a request concurrently; the first failure names its image. */
export async function loadImages(sources: Array<string | Uint8Array>, limits: ImageLimits): Promise<LoadedImage[]> {
  if (sources.length > limits.maxImagesPerRequest) {
    throw new ImageError(`the request has ${sources.length} images; the limit is ${limits.maxImagesPerRequest}`, 'messages');
  }
  return Promise.all(
    sources.map(async (src, i) => {
      const bytes = await loadMediaBytes(src, i, limits);
      const hash = createHash('sha256').update(bytes).digest('hex');
      try {
        return { image: await decodeImage(bytes, { maxPixels: limits.maxImagePixels }), hash };
      } catch (e) {
        throw new ImageError(`image ${i + 1} (${describeSource(src)}): ${(e as Error).message}`, 'image');
      }
    }),
  );
}
