import { TextConfig } from './config.js';

/** Rotary tables of a decoder, shared by the families. */

/** Default RoPE inv_freq in float32, as the reference builds it: 1 / theta^(2j / dim). */
function baseInvFreq(theta: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let j = 0; j < half; j++) out[j] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headDim))));
  return out;
}

/** Text inv_freq in float32 with the config's rope_scaling (transformers' rope init functions). */
export function textInvFreq(cfg: TextConfig): Float32Array {
  const f = baseInvFreq(cfg.ropeTheta, cfg.headDim);
  const rs = cfg.ropeScaling;
  if (!rs) return f;
  const fr = Math.fround;
  if (rs.type === 'linear') return f.map((v) => fr(v / rs.factor));
  // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
  const lowWavelen = rs.originalMaxPositions / rs.lowFreqFactor;
  const highWavelen = rs.originalMaxPositions / rs.highFreqFactor;
  return f.map((v) => {
    const wavelen = fr(fr(2 * Math.PI) / v);
    if (wavelen > lowWavelen) return fr(v / rs.factor);
    if (wavelen < highWavelen) return v;
    const smooth = fr(fr(fr(rs.originalMaxPositions / wavelen) - rs.lowFreqFactor) / fr(rs.highFreqFactor - rs.lowFreqFactor));
    // ((1 - s) * f) / factor + s * f, in the reference's order.
    return fr(fr(fr(fr(1 - smooth) * v) / rs.factor) + fr(smooth * v));
  });
}

/** inv_freq of the sliding-window layers: their own base, unscaled (Gemma 3), or the text one. */
export function localInvFreq(cfg: TextConfig): Float32Array {
  return cfg.localRopeTheta === undefined ? textInvFreq(cfg) : baseInvFreq(cfg.localRopeTheta, cfg.headDim);
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

/** Plain 1-D prompt positions: token i at position i. */
export function sequentialPositions(n: number): { positions: Int32Array; next: number } {
  return { positions: Int32Array.from({ length: n }, (_, i) => i), next: n };
}
