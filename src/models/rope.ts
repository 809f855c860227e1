import { TextConfig } from './config.js';

/** Rotary tables of a decoder, shared by the families. */

/** Default RoPE inv_freq in float32, as the reference builds it: 1 / theta^(2j / dim). */
function baseInvFreq(theta: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let j = 0; j < half; j++) out[j] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headDim))));
  return out;
}

/** Features each head rotates: the head (most families), or MLA's separate rope part. */
export function rotaryDim(cfg: TextConfig): number {
  return cfg.mla?.ropeDim ?? cfg.headDim;
}

/** yarn's attention factor: 0.1 * m * ln(f) + 1 (1 for f <= 1). */
export function yarnMscale(factor: number, m: number): number {
  return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
}

/** Factor on the cos/sin tables (yarn's mscale ratio; 1 otherwise). */
export function ropeTableScale(cfg: TextConfig): number {
  const rs = cfg.ropeScaling;
  return rs?.type === 'yarn' ? Math.fround(yarnMscale(rs.factor, rs.mscale) / yarnMscale(rs.factor, rs.mscaleAllDim)) : 1;
}

/** Text inv_freq in float32 with the config's rope_scaling (transformers' and DeepSeek-V2's rope init functions). */
export function textInvFreq(cfg: TextConfig): Float32Array {
  const dim = rotaryDim(cfg);
  const f = baseInvFreq(cfg.ropeTheta, dim);
  const rs = cfg.ropeScaling;
  if (!rs) return f;
  const fr = Math.fround;
  if (rs.type === 'yarn') {
    // Interpolated (f-times slower) frequencies below the beta_slow band, original ones above beta_fast, a ramp between.
    const corr = (rot: number) => (dim * Math.log(rs.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(cfg.ropeTheta));
    const low = Math.max(Math.floor(corr(rs.betaFast)), 0);
    let high = Math.min(Math.ceil(corr(rs.betaSlow)), dim - 1);
    if (low === high) high += 0.001;
    return f.map((extra, i) => {
      const inter = fr(1 / fr(rs.factor * fr(Math.pow(cfg.ropeTheta, fr((2 * i) / dim)))));
      const mask = fr(1 - Math.min(1, Math.max(0, fr(fr(i - low) / fr(high - low)))));
      return fr(fr(inter * fr(1 - mask)) + fr(extra * mask));
    });
  }
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
  return cfg.localRopeTheta === undefined ? textInvFreq(cfg) : baseInvFreq(cfg.localRopeTheta, rotaryDim(cfg));
}

/**
 * Which position axis rotates each frequency: from mrope_section for M-RoPE (0 t, 1 h,
 * 2 w), else axis 0 for every frequency (plain 1-D RoPE).
 */
export function ropeAxes(cfg: TextConfig): Uint8Array {
  const axes = new Uint8Array(rotaryDim(cfg) / 2);
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
  scale = 1,
): void {
  const half = invFreq.length;
  for (let t = 0; t < count; t++) {
    const base = (row + t) * half;
    for (let j = 0; j < half; j++) {
      const a = Math.fround(pos3(t, axes[j]!) * invFreq[j]!);
      cos[base + j] = scale === 1 ? Math.cos(a) : Math.fround(Math.fround(Math.cos(a)) * scale);
      sin[base + j] = scale === 1 ? Math.sin(a) : Math.fround(Math.fround(Math.sin(a)) * scale);
    }
  }
}

/** Plain 1-D prompt positions: token i at position i. */
export function sequentialPositions(n: number): { positions: Int32Array; next: number } {
  return { positions: Int32Array.from({ length: n }, (_, i) => i), next: n };
}
