import { InvalidRequestError } from '../errors.js';

export interface ImageRange {
  /** Index of the image's first embedding-row token in the prompt. */
  start: number;
  /** Tokens from the first to the last embedding-row token of the image. */
  length: number;
  /** Per token of the range, its embedding row, or -1 (a separator inside the image's text); absent when every token is a row, in order. */
  rowAt?: Int32Array;
}


/**
 * The template writes one placeholder token per image; the model needs the image's full
 * token layout. Replaces the i-th placeholder by `perImage[i]`: a count of copies of the
 * placeholder (one per embedding row), or the exact ids (markers, separators and image tokens).
 */
export function expandImagePlaceholders(
  ids: readonly number[],
  placeholderId: number,
  perImage: ReadonlyArray<number | readonly number[]>,
): number[] {
  let found = 0;
  for (const id of ids) if (id === placeholderId) found++;
  if (found !== perImage.length) {
    throw new InvalidRequestError(`the prompt has ${found} image placeholder(s) but ${perImage.length} image(s) were given`, 'messages');
  }
  for (const n of perImage) {
    const len = typeof n === 'number' ? n : n.length;
    if (!Number.isInteger(len) || len < 1) throw new RangeError(`tokens per image must be positive integers, got ${len}`);
  }
  const out: number[] = [];
  let k = 0;
  for (const id of ids) {
    if (id !== placeholderId) out.push(id);
    else {
      const r = perImage[k++]!;
      if (typeof r === 'number') for (let j = 0; j < r; j++) out.push(placeholderId);
      else for (const t of r) out.push(t);
    }
  }
  return out;
}

/**
 * Where each image's embedding rows go: the image tokens of the prompt, taken in order,
 * `rows[i]` of them for image i (0: the image is its single token, with no row). An image whose tokens are interrupted (slices, separators)
 * gets a `rowAt` map over its range.
 */
export function locateImages(ids: readonly number[], imageTokenId: number, rows: readonly number[]): ImageRange[] {
  if (rows.some((n) => !Number.isInteger(n) || n < 0)) throw new RangeError(`rows per image must be integers >= 0, got ${rows.join(', ')}`);
  const positions: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === imageTokenId) positions.push(i);
  // An image of no rows (its layers read it by cross-attention) is its one image token, which keeps its own embedding.
  const want = rows.reduce((a, b) => a + Math.max(b, 1), 0);
  if (positions.length !== want) {
    throw new InvalidRequestError(`the prompt has ${positions.length} image token(s) but its ${rows.length} image(s) need ${want}`, 'messages');
  }
  const ranges: ImageRange[] = [];
  let p = 0;
  for (const n of rows) {
    if (n === 0) {
      ranges.push({ start: positions[p++]!, length: 1, rowAt: Int32Array.of(-1) });
      continue;
    }
    const mine = positions.slice(p, p + n);
    p += n;
    const start = mine[0]!;
    const length = mine[n - 1]! - start + 1;
    if (length === n) ranges.push({ start, length });
    else {
      const rowAt = new Int32Array(length).fill(-1);
      mine.forEach((pos, r) => (rowAt[pos - start] = r));
      ranges.push({ start, length, rowAt });
    }
  }
  return ranges;
}
