/**
 * Bit-exact port of Pillow's `Image.resize((w, h), Image.BICUBIC)` and
 * `Image.resize((w, h), Image.BILINEAR)` for 8-bit RGB (Pillow src/libImaging/Resample.c).
 * The Hugging Face image processors resize with PIL, and the vision towers were trained
 * on those exact bytes; libvips' kernels differ by up to 10 grey levels, so we reproduce
 * Pillow's fixed-point two-pass resampler:
 *   - a filter is a kernel and its support (bicubic a = -0.5 over 2 pixels, bilinear's
 *     triangle over 1), the support scaled by the downscale factor (antialiasing),
 *   - per-output coefficients are computed in float64, normalised to sum 1, then
 *     converted to fixed point with PRECISION_BITS = 32 - 8 - 2 = 22,
 *   - horizontal pass first (only over the source rows the vertical pass will read),
 *     then vertical; a pass is skipped when its axis keeps its size (and box).
 */
import { ScratchBytes } from './scratchBytes.js';
import type { RgbImage } from './image.js';
import { AxisCoeffs, SimdResampler } from './wasm/resampleSimd.js';

const PRECISION_BITS = 32 - 8 - 2;
/** Rounding bias: Pillow starts every accumulator at 1 << (PRECISION_BITS - 1). */
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** The PIL filters ported here, by their names in Pillow's Image.Resampling. */
export type PilFilter = 'bilinear' | 'bicubic';

/** Pillow's `struct filter`: the kernel and its support in source pixels (before scaling). */
interface Filter {
  kernel(x: number): number;
  support: number;
}

/** Pillow's bicubic_filter with a = -0.5 (constants folded exactly as the C compiler does). */
function bicubicFilter(x: number): number {
  if (x < 0.0) x = -x;
  if (x < 1.0) return (1.5 * x - 2.5) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
  return 0.0;
}

/** Pillow's bilinear_filter: the triangle 1 - |x| on (-1, 1). */
function bilinearFilter(x: number): number {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

const FILTERS: Record<PilFilter, Filter> = {
  bicubic: { kernel: bicubicFilter, support: 2.0 },
  bilinear: { kernel: bilinearFilter, support: 1.0 },
};

/** The PIL filter of a `resample` value of preprocessor_config.json (PIL.Image.Resampling), or null if not ported. */
export function pilFilterOf(resample: unknown): PilFilter | null {
  if (resample === 2) return 'bilinear';
  if (resample === 3) return 'bicubic';
  return null;
}

/**
 * precompute_coeffs + normalize_coeffs_8bpc. `in0`/`in1` are the box edges, which
 * Pillow holds as C floats (callers pass Math.fround values).
 */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): AxisCoeffs {
  const kernel = filter.kernel;
  // (double)(in1 - in0) / outSize, where the subtraction happens in float
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    // C casts (int) truncate toward zero
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = kernel((x + xmin - center + 0.5) * ss);
      pre[x] = w;
      ww += w;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0.0 ? pre[x]! / ww : pre[x]!;
      // normalize_coeffs_8bpc: round half away from zero, then truncate
      kk[base + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    // remaining kk entries stay 0, as in Pillow
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/*
 * The passes are split into per-row functions on purpose: V8 then optimises them as
 * ordinary hot functions after a few rows, instead of on-stack-replacing one big loop
 * nest that then deoptimises on code it has not run yet (seen with --trace-deopt).
 */

/** (bias + 2 taps `step` bytes apart) >> PRECISION_BITS: bilinear upscaling. */
function taps2(src: Uint8Array, p: number, step: number, k0: number, k1: number): number {
  return (HALF + Math.imul(src[p]!, k0) + Math.imul(src[p + step]!, k1)) >> PRECISION_BITS;
}

/** (bias + 4 taps `step` bytes apart) >> PRECISION_BITS; small enough for V8 to inline. */
function taps4(src: Uint8Array, p: number, step: number, k0: number, k1: number, k2: number, k3: number): number {
  return (HALF + Math.imul(src[p]!, k0) + Math.imul(src[p + step]!, k1) +
    Math.imul(src[p + 2 * step]!, k2) + Math.imul(src[p + 3 * step]!, k3)) >> PRECISION_BITS;
}

/** As taps4 with 5 taps. */
function taps5(
  src: Uint8Array, p: number, step: number, k0: number, k1: number, k2: number, k3: number, k4: number,
): number {
  return (HALF + Math.imul(src[p]!, k0) + Math.imul(src[p + step]!, k1) + Math.imul(src[p + 2 * step]!, k2) +
    Math.imul(src[p + 3 * step]!, k3) + Math.imul(src[p + 4 * step]!, k4)) >> PRECISION_BITS;
}

/**
 * One row of ImagingResampleHorizontal_8bpc for 3 channels. The output is written through a
 * Uint8ClampedArray, whose store clamps to 0..255 exactly like Pillow's clip8 on
 * (ss >> PRECISION_BITS). Integer sums are exact in any order (|sum| < 2^31), so the
 * common cases are unrolled: 4 and 5 taps (bicubic; bilinear downscaling by 2) and 2
 * (bilinear upscaling).
 */
function horizontalRow(
  src: Uint8Array, rowIn: number, out: Uint8ClampedArray, o: number, outW: number, c: AxisCoeffs,
): void {
  const { ksize, bounds, kk } = c;
  for (let xx = 0; xx < outW; xx++, o += 3) {
    const n = bounds[xx * 2 + 1]!;
    const kb = xx * ksize;
    const p = rowIn + bounds[xx * 2]! * 3;
    if (n === 2) {
      const k0 = kk[kb]!, k1 = kk[kb + 1]!;
      out[o] = taps2(src, p, 3, k0, k1);
      out[o + 1] = taps2(src, p + 1, 3, k0, k1);
      out[o + 2] = taps2(src, p + 2, 3, k0, k1);
    } else if (n === 4) {
      const k0 = kk[kb]!, k1 = kk[kb + 1]!, k2 = kk[kb + 2]!, k3 = kk[kb + 3]!;
      out[o] = taps4(src, p, 3, k0, k1, k2, k3);
      out[o + 1] = taps4(src, p + 1, 3, k0, k1, k2, k3);
      out[o + 2] = taps4(src, p + 2, 3, k0, k1, k2, k3);
    } else if (n === 5) {
      const k0 = kk[kb]!, k1 = kk[kb + 1]!, k2 = kk[kb + 2]!, k3 = kk[kb + 3]!, k4 = kk[kb + 4]!;
      out[o] = taps5(src, p, 3, k0, k1, k2, k3, k4);
      out[o + 1] = taps5(src, p + 1, 3, k0, k1, k2, k3, k4);
      out[o + 2] = taps5(src, p + 2, 3, k0, k1, k2, k3, k4);
    } else {
      let s0 = HALF, s1 = HALF, s2 = HALF;
      for (let x = 0, q = p; x < n; x++, q += 3) {
        const k = kk[kb + x]!;
        s0 += Math.imul(src[q]!, k);
        s1 += Math.imul(src[q + 1]!, k);
        s2 += Math.imul(src[q + 2]!, k);
      }
      out[o] = s0 >> PRECISION_BITS;
      out[o + 1] = s1 >> PRECISION_BITS;
      out[o + 2] = s2 >> PRECISION_BITS;
    }
  }
}

/** ImagingResampleHorizontal_8bpc: `rows` rows starting at source row `yOffset`. */
function resampleHorizontal(
  src: Uint8Array, inW: number, out: Uint8ClampedArray, outW: number,
  rows: number, yOffset: number, c: AxisCoeffs,
): void {
  for (let yy = 0; yy < rows; yy++) horizontalRow(src, (yy + yOffset) * inW * 3, out, yy * outW * 3, outW, c);
}

/**
 * One output row of ImagingResampleVertical_8bpc. All samples of a row sum the same
 * taps, so the row is treated as W = width*3 samples. 2, 4 and 5 taps are unrolled; other
 * counts accumulate tap by tap over the whole row (sequential memory access).
 */
function verticalRow(
  src: Uint8Array, p0: number, W: number, n: number, kk: Int32Array, kb: number,
  out: Uint8ClampedArray, o: number, acc: Int32Array,
): void {
  if (n === 2) {
    const k0 = kk[kb]!, k1 = kk[kb + 1]!;
    for (let i = 0; i < W; i++) out[o + i] = taps2(src, p0 + i, W, k0, k1);
  } else if (n === 4) {
    const k0 = kk[kb]!, k1 = kk[kb + 1]!, k2 = kk[kb + 2]!, k3 = kk[kb + 3]!;
    for (let i = 0; i < W; i++) out[o + i] = taps4(src, p0 + i, W, k0, k1, k2, k3);
  } else if (n === 5) {
    const k0 = kk[kb]!, k1 = kk[kb + 1]!, k2 = kk[kb + 2]!, k3 = kk[kb + 3]!, k4 = kk[kb + 4]!;
    for (let i = 0; i < W; i++) out[o + i] = taps5(src, p0 + i, W, k0, k1, k2, k3, k4);
  } else {
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const k = kk[kb + y]!;
      const p = p0 + y * W;
      for (let i = 0; i < W; i++) acc[i] += Math.imul(src[p + i]!, k);
    }
    for (let i = 0; i < W; i++) out[o + i] = acc[i]! >> PRECISION_BITS;
  }
}

/** ImagingResampleVertical_8bpc over the whole output. */
function resampleVertical(src: Uint8Array, width: number, out: Uint8ClampedArray, outH: number, c: AxisCoeffs): void {
  const { ksize, bounds, kk } = c;
  const W = width * 3;
  const acc = new Int32Array(W);
  for (let yy = 0; yy < outH; yy++) {
    verticalRow(src, bounds[yy * 2]! * W, W, bounds[yy * 2 + 1]!, kk, yy * ksize, out, yy * W, acc);
  }
}

/** Source region to resample, in source pixels: [x0, y0, x1, y1] (Pillow's `box`). */
export type ResizeBox = readonly [number, number, number, number];

/** The horizontal pass's output when the vertical pass reads it (it never escapes then). */
const horizontalScratch = new ScratchBytes(32 << 20);

/** `Image.resize((outW, outH), Image.BICUBIC, box)`: see resizePil. */
export function resizeBicubic(img: RgbImage, outW: number, outH: number, box?: ResizeBox, out?: Uint8Array): RgbImage {
  return resizePil(img, outW, outH, 'bicubic', box, out);
}

/** `Image.resize((outW, outH), Image.BILINEAR, box)`: see resizePil. */
export function resizeBilinear(img: RgbImage, outW: number, outH: number, box?: ResizeBox, out?: Uint8Array): RgbImage {
  return resizePil(img, outW, outH, 'bilinear', box, out);
}

/**
 * `Image.resize((outW, outH), filter, box)` for an RGB image (no `reducing_gap`, as the
 * Hugging Face processors call it). `box` defaults to the whole image; like Pillow, an
 * unchanged size with the default box returns a copy. `out` (outW * outH * 3 bytes)
 * receives the result instead of a new array.
 */
export function resizePil(
  img: RgbImage, outW: number, outH: number, filter: PilFilter, box?: ResizeBox, out?: Uint8Array,
): RgbImage {
  const f = FILTERS[filter];
  if (!f) throw new RangeError(`unsupported PIL filter ${JSON.stringify(filter)}`);
  const { width: inW, height: inH } = img;
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) {
    throw new RangeError(`resize target must be positive integers, got ${outW}x${outH}`);
  }
  if (img.data.length !== inW * inH * 3) {
    throw new RangeError(`RGB image data has ${img.data.length} bytes, expected ${inW * inH * 3}`);
  }
  // Pillow keeps the box as C floats
  const b = (box ?? [0, 0, inW, inH]).map((v) => Math.fround(v)) as unknown as [number, number, number, number];
  if (out && out.length !== outW * outH * 3) throw new RangeError(`output buffer has ${out.length} bytes, expected ${outW * outH * 3}`);
  const copy = (data: Uint8Array) => {
    if (!out) return data.slice();
    out.set(data);
    return out;
  };
  if (outW === inW && outH === inH && b[0] === 0 && b[1] === 0 && b[2] === inW && b[3] === inH) {
    return { width: inW, height: inH, data: copy(img.data) };
  }
  // The C code compares box[2]/box[3] against the *output* size here; ported literally.
  const needHorizontal = outW !== inW || b[0] !== 0 || b[2] !== outW;
  const needVertical = outH !== inH || b[1] !== 0 || b[3] !== outH;

  const vert = precomputeCoeffs(inH, b[1], b[3], outH, f);
  // Only the source rows the vertical pass will read go through the horizontal pass.
  const yboxFirst = vert.bounds[0]!;
  const yboxLast = vert.bounds[outH * 2 - 2]! + vert.bounds[outH * 2 - 1]!;
  const horiz = needHorizontal ? precomputeCoeffs(inW, b[0], b[2], outW, f) : null;
  if (horiz) for (let i = 0; i < outH; i++) vert.bounds[i * 2] -= yboxFirst;
  const firstRow = horiz ? yboxFirst : 0;
  const rows = horiz ? yboxLast - yboxFirst : inH;
  const width = horiz ? outW : inW;

  const simd = simdResampler();
  if (simd) {
    const dst = out ?? new Uint8Array(width * outH * 3);
    if (simd.resize(img.data, firstRow * inW * 3, inW, rows, horiz, needVertical ? vert : null, width, outH, dst)) {
      return { width, height: outH, data: dst };
    }
  }

  let cur: RgbImage = img;
  if (horiz) {
    const n = outW * rows * 3;
    const tmp = needVertical ? horizontalScratch.get(n) : (out ?? new Uint8Array(n));
    resampleHorizontal(img.data, inW, new Uint8ClampedArray(tmp.buffer, tmp.byteOffset, n), outW, rows, firstRow, horiz);
    cur = { width: outW, height: rows, data: tmp };
  }
  if (needVertical) {
    const dst = out ?? new Uint8Array(cur.width * outH * 3);
    resampleVertical(cur.data, cur.width, new Uint8ClampedArray(dst.buffer, dst.byteOffset, dst.length), outH, vert);
    return { width: cur.width, height: outH, data: dst };
  }
  return cur === img ? { width: inW, height: inH, data: copy(img.data) } : cur;
}

let simdState: SimdResampler | null | undefined;

/** The WebAssembly SIMD passes, created on first use; null where unavailable or turned off. */
function simdResampler(): SimdResampler | null {
  if (simdState === undefined) simdState = process.env.IRIS_RESAMPLE_SIMD === '0' ? null : SimdResampler.create();
  return simdState;
}

/**
 * Chooses the passes' implementation: WebAssembly SIMD (the default where
 * available) or the JS loops. Both give the same bytes; tests compare them.
 * Returns whether SIMD is in use.
 */
export function useSimdResampler(on: boolean): boolean {
  simdState = on ? SimdResampler.create() : null;
  return simdState !== null;
}
