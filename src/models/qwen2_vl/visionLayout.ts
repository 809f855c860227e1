import { VisionConfig } from './config.js';

export type GridThw = [number, number, number];

/** Attention segments as padded index rows, so one batched matmul covers them all. */
export interface Segments {
  /** [numSegments, maxLen] positions into the sequence; padding repeats a valid index. */
  gather: BigInt64Array;
  /** [numSegments, maxLen] key mask: 1 for real positions, 0 for padding. */
  mask: Int32Array;
  /** Whether any segment is padded. */
  padded: boolean;
  /** [seqLen] where each sequence position sits in the flattened [numSegments * maxLen]. */
  ungather: BigInt64Array;
  numSegments: number;
  maxLen: number;
}

/** Everything the vision graph needs besides pixels, for one batch of images. */
export interface VisionLayout {
  numPatches: number;
  /** Patch row order fed to the graph (window order for Qwen2.5-VL, identity otherwise). */
  patchOrder: Int32Array;
  /** [numPatches, 1, headDim] rotary tables in patch order. */
  cos: Float32Array;
  sin: Float32Array;
  full: Segments;
  window: Segments | null;
  /** For each merged unit in original order, its row in the graph's output. */
  restore: Int32Array;
}

function segmentsFromBounds(bounds: number[], seqLen: number): Segments {
  const ranges: Array<[number, number]> = [];
  for (let i = 1; i < bounds.length; i++) if (bounds[i]! > bounds[i - 1]!) ranges.push([bounds[i - 1]!, bounds[i]!]);
  const maxLen = Math.max(...ranges.map(([a, b]) => b - a));
  const n = ranges.length;
  const gather = new BigInt64Array(n * maxLen);
  const mask = new Int32Array(n * maxLen);
  let padded = false;
  const ungather = new BigInt64Array(seqLen);
  ranges.forEach(([a, b], s) => {
    for (let j = 0; j < maxLen; j++) {
      const valid = a + j < b;
      gather[s * maxLen + j] = BigInt(valid ? a + j : a);
      mask[s * maxLen + j] = valid ? 1 : 0;
      if (!valid) padded = true;
      if (valid) ungather[a + j] = BigInt(s * maxLen + j);
    }
  });
  return { gather, mask, padded, ungather, numSegments: n, maxLen };
}

/**
 * Qwen2.5-VL's window partition: merged units are grouped into square windows of
 * `window_size / merge / patch` units per side, row-major over windows; windows at
 * the right and bottom edges are partial, and all-padding windows are dropped.
 */
function windowIndex(grids: GridThw[], cfg: VisionConfig): { index: number[]; bounds: number[] } {
  const merge = cfg.spatialMergeSize;
  const unit = merge * merge;
  const vws = Math.floor(cfg.windowSize / merge / cfg.patchSize);
  const index: number[] = [];
  const bounds = [0];
  let base = 0;
  for (const [t, h, w] of grids) {
    const lh = h / merge;
    const lw = w / merge;
    const nwh = Math.ceil(lh / vws);
    const nww = Math.ceil(lw / vws);
    for (let f = 0; f < t; f++) {
      for (let wy = 0; wy < nwh; wy++) {
        for (let wx = 0; wx < nww; wx++) {
          let count = 0;
          for (let y = wy * vws; y < Math.min((wy + 1) * vws, lh); y++) {
            for (let x = wx * vws; x < Math.min((wx + 1) * vws, lw); x++) {
              index.push(base + f * lh * lw + y * lw + x);
              count++;
            }
          }
          bounds.push(bounds[bounds.length - 1]! + count * unit);
        }
      }
    }
    base += t * lh * lw;
  }
  return { index, bounds };
}

/** inv_freq of the vision rotary table, in float32 as the reference computes it. */
function visionInvFreq(headDim: number): Float32Array {
  const dim = headDim / 2;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = Math.fround(1 / Math.fround(Math.pow(10000, Math.fround((2 * i) / dim))));
  return out;
}

/** Images of one grid size; several sizes need several vision runs (see the model). */
export function buildVisionLayout(grids: GridThw[], cfg: VisionConfig): VisionLayout {
  if (grids.some((g) => g[1] !== grids[0]![1] || g[2] !== grids[0]![2])) throw new Error('one vision run takes images of one size');
  const merge = cfg.spatialMergeSize;
  const unit = merge * merge;
  const headDim = cfg.hiddenSize / cfg.numHeads;
  const numPatches = grids.reduce((a, [t, h, w]) => a + t * h * w, 0);
  const numUnits = numPatches / unit;

  // Rotary angles per patch in the reference's (merge-block) order: rows then columns.
  const invFreq = visionInvFreq(headDim);
  const q = invFreq.length;
  const angles = new Float32Array(numPatches * 2 * q);
  let p = 0;
  for (const [t, h, w] of grids) {
    for (let f = 0; f < t; f++) {
      for (let by = 0; by < h / merge; by++) {
        for (let bx = 0; bx < w / merge; bx++) {
          for (let dy = 0; dy < merge; dy++) {
            for (let dx = 0; dx < merge; dx++) {
              const row = by * merge + dy;
              const col = bx * merge + dx;
              for (let i = 0; i < q; i++) {
                angles[p * 2 * q + i] = Math.fround(row * invFreq[i]!);
                angles[p * 2 * q + q + i] = Math.fround(col * invFreq[i]!);
              }
              p++;
            }
          }
        }
      }
    }
  }

  let unitOrder: number[];
  let windowBounds: number[] | null = null;
  if (cfg.kind === 'qwen2_5_vl') {
    const wi = windowIndex(grids, cfg);
    unitOrder = wi.index;
    windowBounds = wi.bounds;
  } else {
    unitOrder = Array.from({ length: numUnits }, (_, i) => i);
  }

  const patchOrder = new Int32Array(numPatches);
  const restore = new Int32Array(numUnits);
  unitOrder.forEach((u, k) => {
    restore[u] = k;
    for (let j = 0; j < unit; j++) patchOrder[k * unit + j] = u * unit + j;
  });

  // emb = cat(angles, angles); cos/sin rounded to float32 like torch's float32 cos.
  const cos = new Float32Array(numPatches * headDim);
  const sin = new Float32Array(numPatches * headDim);
  const half = headDim / 2;
  for (let k = 0; k < numPatches; k++) {
    const src = patchOrder[k]!;
    for (let i = 0; i < half; i++) {
      const a = angles[src * half + i]!;
      const c = Math.fround(Math.cos(a));
      const s = Math.fround(Math.sin(a));
      cos[k * headDim + i] = c;
      cos[k * headDim + half + i] = c;
      sin[k * headDim + i] = s;
      sin[k * headDim + half + i] = s;
    }
  }

  // Full attention: each image (each frame of a video) attends only to itself.
  const fullBounds = [0];
  for (const [t, h, w] of grids) for (let f = 0; f < t; f++) fullBounds.push(fullBounds[fullBounds.length - 1]! + h * w);

  return {
    numPatches,
    patchOrder,
    cos,
    sin,
    full: segmentsFromBounds(fullBounds, numPatches),
    window: windowBounds ? segmentsFromBounds(windowBounds, numPatches) : null,
    restore,
  };
}
