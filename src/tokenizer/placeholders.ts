import { InvalidRequestError } from '../errors.js';

export interface ImageRange {
  /** Index of the first image token in the expanded ids. */
  start: number;
  length: number;
}

export interface ExpandedPrompt {
  ids: number[];
  imageRanges: ImageRange[];
}

/**
 * The template writes one `<|image_pad|>` per image; the model needs one per merged vision
 * patch (grid t*h*w / merge^2). Expands the i-th placeholder to tokensPerImage[i] copies and
 * records where each image's embeddings go.
 */
export function expandImagePlaceholders(
  ids: readonly number[],
  imageTokenId: number,
  tokensPerImage: readonly number[],
): ExpandedPrompt {
  let found = 0;
  for (const id of ids) if (id === imageTokenId) found++;
  if (found !== tokensPerImage.length) {
    throw new InvalidRequestError(
      `the prompt has ${found} image placeholder(s) but ${tokensPerImage.length} image(s) were given`,
      'messages',
    );
  }
  let extra = 0;
  for (const n of tokensPerImage) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`tokens per image must be positive integers, got ${n}`);
    extra += n - 1;
  }
  const out = new Array<number>(ids.length + extra);
  const imageRanges: ImageRange[] = [];
  let o = 0;
  for (const id of ids) {
    if (id !== imageTokenId) {
      out[o++] = id;
      continue;
    }
    const length = tokensPerImage[imageRanges.length];
    imageRanges.push({ start: o, length });
    out.fill(imageTokenId, o, o + length);
    o += length;
  }
  return { ids: out, imageRanges };
}
