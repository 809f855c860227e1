import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { LayerCtx, layerNorm, linear, patchEmbedding, plainMlp, rmsNorm } from '../layers.js';
import { MllamaConfig } from './config.js';

export const MLLAMA_VISION = { pixels: 'pixel_values', ratioIds: 'aspect_ratio_ids', ratioMask: 'aspect_ratio_mask', output: 'cross_states' } as const;

const MASK_MIN = -3.4028234663852886e38;

/** Patches per tile (with the class token) and that count rounded up to a multiple of 8, as the tower pads it. */
export function mllamaTileTokens(cfg: MllamaConfig): { P: number; L: number } {
  const g = Math.floor(cfg.vision.imageSize / cfg.vision.patchSize);
  const P = g * g + 1;
  return { P, L: P + ((8 - (P % 8)) % 8) };
}

/**
 * Llama 3.2 Vision's tower, projector and the cross-attention layers' K/V as one graph:
 * pixel_values [images, tiles, 3, S, S], aspect_ratio_ids [images], aspect_ratio_mask
 * [images, tiles] -> per image, per cross-attention layer, k_norm(k_proj(states)) and
 * v_proj(states): [images, layers, 2, tiles * P, kv heads * head dim]. The text model then
 * reads these for every token of the sequence without computing them again.
 */
export function buildMllamaVisionGraph(
  store: WeightStore,
  cfg: MllamaConfig,
  names: { vision: string; projector: string; text: string },
  quant: SessionQuant = null,
): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const v = cfg.vision;
  const D = v.hiddenSize;
  const T = v.maxNumTiles;
  const S = v.imageSize;
  const p = v.patchSize;
  const G = Math.floor(S / p);
  const { P, L } = mllamaTileTokens(cfg);
  const pre = names.vision;
  const tanh = (name: string) => g.op('Tanh', [w.weight(name, [1])]);

  const pixels = g.input(MLLAMA_VISION.pixels, DataType.FLOAT, ['images', T, 3, S, S]);
  const ids = g.input(MLLAMA_VISION.ratioIds, DataType.INT64, ['images']);
  const tileMask = g.input(MLLAMA_VISION.ratioMask, DataType.FLOAT, ['images', T]);

  // Patch convolution (no bias) over every tile slot: [images, T, G*G, D].
  let h = g.reshape(patchEmbedding(ctx, g.reshape(pixels, [-1, 3, S, S]), S, p, D, `${pre}.patch_embedding.weight`), [-1, T, G * G, D]);
  // Gated per-tile embedding of the image's arrangement: [images, T, 1, D].
  const tileEmbedding = (prefix: string) => g.mul(g.reshape(g.gather(w.weight(`${prefix}.embedding.weight`, [v.aspectRatios.length + 1, T * D]), ids, 0), [-1, T, 1, D]), tanh(`${prefix}.gate`));
  h = g.add(h, tileEmbedding(`${pre}.pre_tile_positional_embedding`));
  // The class token first in every tile.
  const cls = g.op('Expand', [g.reshape(w.weight(`${pre}.class_embedding`, [D]), [1, 1, 1, D]), g.concat([g.slice(g.shape(h), [0], [2], [0]), g.constInt64([1, D])], 0)]);
  h = g.concat([cls, h], 2);
  // Gated position embedding: (1 - tanh(gate)) * per-patch table + tanh(gate) * per-arrangement table.
  const posGate = tanh(`${pre}.gated_positional_embedding.gate`);
  h = g.add(h, g.mul(w.weight(`${pre}.gated_positional_embedding.embedding`, [P, D]), g.sub(g.scalarFloat(1), posGate)));
  const tilePos = g.reshape(g.gather(w.weight(`${pre}.gated_positional_embedding.tile_embedding.weight`, [v.aspectRatios.length + 1, T * P * D]), ids, 0), [-1, T, P, D]);
  h = g.add(h, g.mul(tilePos, posGate));
  h = layerNorm(ctx, h, `${pre}.layernorm_pre`, D, 1e-5);
  // Zero rows up to L per tile, then one sequence of T * L tokens per image.
  h = g.reshape(g.op('Pad', [h, g.constInt64([0, 0, 0, 0, 0, 0, L - P, 0])]), [0, T * L, D]);

  // Only (padding, padding) pairs are masked: padding = an empty tile slot or a row past P.
  const rowPad = g.constFloat(Array.from({ length: L }, (_, l) => (l >= P ? 1 : 0)), [1, 1, L]);
  const slotPad = g.reshape(g.sub(g.scalarFloat(1), tileMask), [-1, T, 1]);
  const pad = g.reshape(g.op('Max', [slotPad, rowPad]), [-1, T * L]);
  const bias = g.mul(g.mul(g.reshape(pad, [-1, 1, T * L, 1]), g.reshape(pad, [-1, 1, 1, T * L])), g.scalarFloat(MASK_MIN));

  const H = v.numHeads;
  const layer = (x: string, prefix: string, gated: boolean) => {
    const a = layerNorm(ctx, x, `${prefix}.input_layernorm`, D, v.normEps);
    const q = linear(ctx, a, `${prefix}.self_attn.q_proj`, D, D, false);
    const k = linear(ctx, a, `${prefix}.self_attn.k_proj`, D, D, false);
    const vv = linear(ctx, a, `${prefix}.self_attn.v_proj`, D, D, false);
    const att = g.op('MultiHeadAttention', [q, k, vv, '', '', bias], { num_heads: H, scale: { float: 1 / Math.sqrt(D / H) } }, { domain: 'com.microsoft' });
    let o = linear(ctx, att, `${prefix}.self_attn.o_proj`, D, D, false);
    if (gated) o = g.mul(o, tanh(`${prefix}.gate_attn`));
    const x1 = g.add(x, o);
    let m = plainMlp(ctx, layerNorm(ctx, x1, `${prefix}.post_attention_layernorm`, D, v.normEps), `${prefix}.mlp.fc1`, `${prefix}.mlp.fc2`, D, v.intermediateSize, D, 'gelu');
    if (gated) m = g.mul(m, tanh(`${prefix}.gate_ffn`));
    return g.add(x1, m);
  };
  // hidden_states[i] of the local encoder is the input of layer i.
  const kept = new Map<number, string>();
  for (let i = 0; i < v.numLayers; i++) {
    kept.set(i, h);
    h = g.withScope(`local${i}`, () => layer(h, `${pre}.transformer.layers.${i}`, false));
  }
  kept.set(v.numLayers, h);
  const inter = v.intermediateLayers.map((i) => kept.get(i)!);
  h = layerNorm(ctx, h, `${pre}.layernorm_post`, D, 1e-5);
  h = g.reshape(g.add(g.reshape(h, [-1, T, L, D]), tileEmbedding(`${pre}.post_tile_positional_embedding`)), [-1, T * L, D]);
  for (let i = 0; i < v.numGlobalLayers; i++) h = g.withScope(`global${i}`, () => layer(h, `${pre}.global_transformer.layers.${i}`, true));
  const K = v.intermediateLayers.length;
  // Channel c of intermediate k lands at c * K + k (stacked on a last axis, then flattened).
  const stacked = g.reshape(g.concat(inter.map((x) => g.reshape(x, [0, 0, D, 1])), 3), [-1, T, L, D * K]);
  const out = g.concat([g.slice(g.reshape(h, [-1, T, L, D]), [0], [P], [2]), g.slice(stacked, [0], [P], [2])], 3);
  const Hd = cfg.text.hiddenSize;
  const states = linear(ctx, g.reshape(out, [-1, T * P, v.outputDim]), names.projector, v.outputDim, Hd, true);

  // Each cross-attention layer's K (normed per head) and V of these states.
  const { numKvHeads: KV, headDim: hd, rmsNormEps } = cfg.text;
  const perLayer = cfg.crossLayers.map((c) => {
    const a = `${names.text}.layers.${c}.cross_attn`;
    const k = g.reshape(rmsNorm(ctx, g.reshape(linear(ctx, states, `${a}.k_proj`, Hd, KV * hd, false), [0, 0, KV, hd]), `${a}.k_norm.weight`, hd, rmsNormEps), [-1, 1, T * P, KV * hd]);
    const vv = g.reshape(linear(ctx, states, `${a}.v_proj`, Hd, KV * hd, false), [-1, 1, T * P, KV * hd]);
    return g.reshape(g.concat([k, vv], 1), [-1, 1, 2, T * P, KV * hd]);
  });
  g.output(g.concat(perLayer, 1), MLLAMA_VISION.output, DataType.FLOAT, ['images', cfg.crossLayers.length, 2, T * P, KV * hd]);
  return { g, w };
}
