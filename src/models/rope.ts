import { TextConfig } from './config.js';

/** Rotary tables of a decoder, shared by the families. */

/** Text inv_freq in float32, as the reference builds it. */
export function textInvFreq(cfg: TextConfig): Float32Array {
  const half = cfg.headDim / 2;
  const out = new Float32Array(half);
  for (let j = 0; j < half; j++) out[j] = Math.fround(1 / Math.fround(Math.pow(cfg.ropeTheta, Math.fround((2 * j) / cfg.headDim))));
  return out;
}

/**
 * Which position axis rotates each frequency: from mrope_section for M-RoPE (0 t, 1 h,
 * 2 w), else axis 0 for every frequency (plain 1-D RoPE).
 */
export function ropeAxes(cfg: TextConfig): Uint8Array {
  const axes = new Uint8Array(cfg.headDim / 2);
  let j = 0;
  cfg.mropeSection?.forEach((count, axis) => {
    for (let c = 0; c < count; c++) axes[j++] = axis;
  });
  return axes;
}

/**
 * Writes cos/sin rows for tokens with the given positions (per axis) into `cos`/`sin`
 * starting at row `row`: one value per frequency (headDim / 2 per row), the cache
 * layout of ONNX Runtime's RotaryEmbedding in its rotate-half mode.
 */
export function writeRopeRows(
  invFreq: Float32Array,
  axes: Uint8Array,
  pos3: (token: number, axis: number) => number,
  count: number,
  cos: Float32Array,
  sin: Float32Array,
  row: number,
): void {
  const half = invFreq.length;
  for (let t = 0; t < count; t++) {
    const base = (row + t) * half;
    for (let j = 0; j < half; j++) {
      const a = Math.fround(pos3(t, axes[j]!) * invFreq[j]!);
      cos[base + j] = Math.cos(a);
      sin[base + j] = Math.sin(a);
    }
  }
}
