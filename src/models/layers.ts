import { GraphBuilder } from '../runtime/onnx/graph.js';
import { SessionWeights } from '../runtime/sessionWeights.js';

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

/** Gemma's RMSNorm: the weight applies as (1 + w) (ONNX Runtime folds the addition at load). */
export function gemmaRmsNorm({ g, w }: LayerCtx, x: string, weight: string, dim: number, eps: number): string {
  return g.op('SimplifiedLayerNormalization', [x, g.add(w.weight(weight, [dim]), g.scalarFloat(1))], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
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

export type Activation = 'silu' | 'quick_gelu' | 'gelu' | 'gelu_pytorch_tanh';

export function activate(g: GraphBuilder, x: string, act: Activation): string {
  if (act === 'silu') return g.silu(x);
  if (act === 'quick_gelu') return g.quickGelu(x);
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): ONNX Runtime's FastGelu.
  if (act === 'gelu_pytorch_tanh') return g.op('FastGelu', [x], {}, { domain: 'com.microsoft' });
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

/**
 * A Conv2d with kernel = stride = `patch` over pixels [N, 3, size, size] (a "valid" one: pixels
 * past the last whole patch are not read), as a matmul of each flattened (c, y, x) patch with the
 * kernel: [N, (size / patch)^2, dim], patches row-major; plus the bias when given.
 */
export function patchEmbedding(ctx: LayerCtx, pixels: string, size: number, patch: number, dim: number, weight: string, bias?: string): string {
  const { g, w } = ctx;
  const G = Math.floor(size / patch);
  const used = G * patch === size ? pixels : g.slice(pixels, [0, 0], [G * patch, G * patch], [2, 3]);
  const patches = g.reshape(g.transpose(g.reshape(used, [-1, 3, G, patch, G, patch]), [0, 2, 4, 1, 3, 5]), [-1, G * G, 3 * patch * patch]);
  const y = g.linearNoBias(patches, g.reshape(w.weight(weight, [dim, 3, patch, patch]), [dim, 3 * patch * patch]));
  return bias ? g.add(y, w.weight(bias, [dim])) : y;
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
 * Attention of B rows of S new tokens to their past in the engine's KV page pool and to
 * themselves, in float32 as the reference's eager path. q: [B, S, H * D]; kNew, vNew:
 * [B, S, KV * D] (k already rotated); caches: [pool_pages, page, KV * D] gathered by
 * blockTable [B, pages]; mask: additive [B, 1, 1, S, pages * page + S]. Query heads are
 * grouped by the KV head they share. Returns [B, S, H * D].
 */
export function pagedAttention(
  g: GraphBuilder,
  a: { q: string; kNew: string; vNew: string; kCache: string; vCache: string; blockTable: string; mask: string },
  heads: number,
  kvHeads: number,
  headDim: number,
  scale = 1 / Math.sqrt(headDim),
): string {
  const D = headDim;
  const KV = kvHeads;
  // [B, S, g * KV * D] -> [B, KV, g, S, D]
  const grouped = (y: string, groups: number) => g.transpose(g.reshape(y, [0, 0, KV, groups, D]), [0, 2, 3, 1, 4]);
  // [B, pages, page, KV * D] -> [B, KV, 1, T, D]
  const past = (cache: string) => g.transpose(g.reshape(g.gather(cache, a.blockTable, 0), [0, -1, KV, 1, D]), [0, 2, 3, 1, 4]);
  const kAll = g.concat([past(a.kCache), grouped(a.kNew, 1)], 3);
  const vAll = g.concat([past(a.vCache), grouped(a.vNew, 1)], 3);
  const qg = grouped(a.q, heads / KV);
  const scores = g.mul(g.matmul(qg, g.transpose(kAll, [0, 1, 2, 4, 3])), g.scalarFloat(scale));
  const attn = g.matmul(g.softmax(g.add(scores, a.mask), -1), vAll);
  return g.reshape(g.transpose(attn, [0, 3, 1, 2, 4]), [0, 0, heads * D]);
}
