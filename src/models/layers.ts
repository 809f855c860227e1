import { GraphBuilder } from '../runtime/onnx/graph.js';
import { SessionWeights } from '../runtime/weights.js';

/**
 * Building blocks shared by the architectures: norms, MLPs, rotary embedding
 * and attention, written once as ONNX subgraphs.
 */
export interface LayerCtx {
  g: GraphBuilder;
  w: SessionWeights;
}

export function rmsNorm({ g, w }: LayerCtx, x: string, weight: string, dim: number, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, w.weight(weight, [dim])], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
}

export function layerNorm({ g, w }: LayerCtx, x: string, prefix: string, dim: number, eps: number): string {
  return g.op('LayerNormalization', [x, w.weight(`${prefix}.weight`, [dim]), w.weight(`${prefix}.bias`, [dim])], {
    axis: -1,
    epsilon: { float: eps },
    stash_type: 1,
  });
}

/** y = x W^T (+ b) for a checkpoint Linear stored [out, in] (float32 or quantized, as the session holds it). */
export function linear({ g, w }: LayerCtx, x: string, prefix: string, inDim: number, outDim: number, bias: boolean): string {
  const y = w.matmul(x, [`${prefix}.weight`], [outDim], inDim);
  return bias ? g.add(y, w.weight(`${prefix}.bias`, [outDim])) : y;
}

/**
 * Several Linears of the same input as one matmul over their concatenated
 * weights (ORT folds the concat at load); the outputs come concatenated on the
 * last axis. One kernel call instead of several small ones per decode step; meant
 * for small weights (see gatedMlp).
 */
export function fusedLinear(ctx: LayerCtx, x: string, prefixes: string[], inDim: number, outDims: number[], bias: boolean): string {
  const { g, w } = ctx;
  const y = w.matmul(x, prefixes.map((p) => `${p}.weight`), outDims, inDim);
  return bias ? g.add(y, w.concatenated(prefixes.map((p, i) => [`${p}.bias`, [outDims[i]!]]))) : y;
}

export type Activation = 'silu' | 'quick_gelu' | 'gelu';

export function activate(g: GraphBuilder, x: string, act: Activation): string {
  if (act === 'silu') return g.silu(x);
  if (act === 'quick_gelu') return g.quickGelu(x);
  return g.gelu(x);
}

/** down(act(gate(x)) * up(x)), as in Qwen2 / Llama MLPs. */
export function gatedMlp(ctx: LayerCtx, x: string, prefix: string, dim: number, inner: number, act: Activation, bias: boolean): string {
  // Not fused like q/k/v: ORT keeps every folded piece until the end of its folding pass,
  // and for the large gate/up weights that raised the load's peak memory by ~30%.
  const gate = activate(ctx.g, linear(ctx, x, `${prefix}.gate_proj`, dim, inner, bias), act);
  const up = linear(ctx, x, `${prefix}.up_proj`, dim, inner, bias);
  return linear(ctx, ctx.g.mul(gate, up), `${prefix}.down_proj`, inner, dim, bias);
}

/** fc2(act(fc1(x))), the plain two-layer MLP. */
export function plainMlp(ctx: LayerCtx, x: string, fc1: string, fc2: string, dim: number, inner: number, outDim: number, act: Activation): string {
  return linear(ctx, activate(ctx.g, linear(ctx, x, fc1, dim, inner, true), act), fc2, inner, outDim, true);
}

/** Rotate-half rotary: x * cos + [-x2, x1] * sin over the last axis of size `dim`. */
export function applyRotary(g: GraphBuilder, x: string, cos: string, sin: string, dim: number): string {
  const half = dim / 2;
  const x1 = g.slice(x, [0], [half], [-1]);
  const x2 = g.slice(x, [half], [dim], [-1]);
  const rotated = g.concat([g.neg(x2), x1], -1);
  return g.add(g.mul(x, cos), g.mul(rotated, sin));
}

/**
 * Rotate-half rotary over [B, S, heads * headDim] with per-token tables
 * cos/sin [tokens, headDim / 2] (ONNX Runtime's RotaryEmbedding); `tokenIndex`
 * [B, S] says which table row each token uses.
 */
export function rotaryPerToken(g: GraphBuilder, x: string, tokenIndex: string, cos: string, sin: string, heads: number): string {
  return g.op('RotaryEmbedding', [x, tokenIndex, cos, sin], { interleaved: 0, num_heads: heads }, { domain: 'com.microsoft' });
}

/**
 * Softmax attention with an additive mask, in float32 as the reference's eager path.
 * q: [..., Sq, D], k and v: [..., Sk, D] of the given rank; mask broadcasts to [..., Sq, Sk].
 */
export function maskedAttention(g: GraphBuilder, q: string, k: string, v: string, mask: string, headDim: number, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  const scores = g.mul(g.matmul(q, g.transpose(k, perm)), g.scalarFloat(1 / Math.sqrt(headDim)));
  return g.matmul(g.softmax(g.add(scores, mask), -1), v);
}
