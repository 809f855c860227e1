/**
 * The host-side inputs of MiniCPM-V's vision graph that the reference computes with torch and
 * numpy float32 arithmetic: NaViT's bucketed position ids and the resampler's 2-D sin-cos table.
 */
const f32 = Math.fround;

/**
 * torch 1.13's CPU float32 arange: n = ceil((end - start) / step); blocks of two 8-lane vectors
 * (AVX2) whose lane j is f32(f32(start + step * i0) + j * step), i0 the vector's first index; the
 * tail f32(start + step * i). The rounding decides bucket edges, so it is reproduced as is.
 */
export function arangeF32(start: number, end: number, step: number, lanes = 8): number[] {
  const n = Math.ceil((end - start) / step);
  const out: number[] = [];
  let i = 0;
  for (; i <= n - 2 * lanes; i += 2 * lanes) {
    for (const i0 of [i, i + lanes]) {
      const base = f32(start + step * i0);
      for (let j = 0; j < lanes; j++) out.push(f32(base + j * step));
    }
  }
  for (; i < n; i++) out.push(f32(start + step * i));
  return out;
}

/** Per patch of an h x w piece (row-major), its cell in the side x side position table (NaViT's bucketize). */
export function navitPositionIds(h: number, w: number, side: number): Int32Array {
  const bounds = arangeF32(1 / side, 1.0, 1 / side);
  // bucketize(..., right=True): how many boundaries are <= the coordinate.
  const bucket = (c: number) => {
    let k = 0;
    while (k < bounds.length && bounds[k]! <= c) k++;
    return k;
  };
  const coords = (n: number) => arangeF32(0, 1 - 1e-6, f32(1 / n)).map(bucket);
  const bh = coords(h);
  const bw = coords(w);
  const ids = new Int32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) ids[y * w + x] = bh[y]! * side + bw[x]!;
  return ids;
}

/**
 * The resampler's 2-D sin-cos position embedding of cell (row, col), numpy float32:
 * [sin(col w), cos(col w), sin(row w), cos(row w)], w_d = 1 / 10000^(d / (E / 4)).
 */
export function sincos2d(embedDim: number, rows: number, cols: number): Float32Array {
  const quarter = embedDim / 4;
  const omega = Float32Array.from({ length: quarter }, (_, d) => f32(1 / f32(Math.pow(10000, f32(d / quarter)))));
  const out = new Float32Array(rows * cols * embedDim);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const o = (r * cols + c) * embedDim;
      for (let d = 0; d < quarter; d++) {
        const a = f32(c * omega[d]!);
        const b = f32(r * omega[d]!);
        out[o + d] = Math.sin(a);
        out[o + quarter + d] = Math.cos(a);
        out[o + 2 * quarter + d] = Math.sin(b);
        out[o + 3 * quarter + d] = Math.cos(b);
      }
    }
  }
  return out;
}
