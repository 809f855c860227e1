import { GridThw } from './visionLayout.js';

/** 3-axis (t, h, w) positions of a prompt, and the next position after it. */
export interface PromptPositions {
  /** [3][S] flattened: axis-major. */
  positions: Int32Array;
  length: number;
  /** Position of the first generated token (on every axis). */
  next: number;
}

/**
 * Qwen2-VL's get_rope_index for images: text tokens advance all three axes
 * together; an image's tokens at text offset s get (s, s + row, s + col), and
 * the text after it resumes at the largest position so far + 1.
 */
export function promptPositions(
  ids: ArrayLike<number>,
  images: Array<{ start: number; grid: GridThw }>,
  mergeSize: number,
): PromptPositions {
  const n = ids.length;
  const pos = new Int32Array(3 * n);
  let next = 0;
  let i = 0;
  const sorted = [...images].sort((a, b) => a.start - b.start);
  let k = 0;
  while (i < n) {
    const img = sorted[k];
    if (img && img.start === i) {
      const [t, h, w] = img.grid;
      const lh = h / mergeSize;
      const lw = w / mergeSize;
      let j = i;
      let maxPos = next;
      for (let f = 0; f < t; f++) {
        for (let y = 0; y < lh; y++) {
          for (let x = 0; x < lw; x++) {
            // Still images have time index 0 on every frame-group.
            pos[j] = next + (t > 1 ? f : 0);
            pos[n + j] = next + y;
            pos[2 * n + j] = next + x;
            maxPos = Math.max(maxPos, pos[j]!, pos[n + j]!, pos[2 * n + j]!);
            j++;
          }
        }
      }
      i = j;
      next = maxPos + 1;
      k++;
    } else {
      pos[i] = pos[n + i] = pos[2 * n + i] = next;
      next++;
      i++;
    }
  }
  return { positions: pos, length: n, next };
}
