import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { LayerCtx, layerNorm, linear, plainMlp } from '../layers.js';
import { MiniCPMVConfig } from './config.js';

export const MINICPMV_VISION = {
  pixels: 'pixel_values',
  positions: 'position_ids',
  valid: 'patch_valid',
  keyPos: 'resampler_pos',
  output: 'image_features',
} as const;

const MASK_MIN = -3.4028234663852886e38;

/**
 * MiniCPM-V's NaViT SigLIP and resampler as one graph, over B pieces (an image or a slice)
 * padded to L patches: pixel_values [B, 3, p, L * p] (each piece's patches side by side),
 * position_ids [B, L] (bucketed, from the host), patch_valid [B, L] (1 for real patches),
 * resampler_pos [B, L, E] (2-D sin-cos of each patch, zero on padding) -> [B, Q, E].
 */
export function buildMiniCPMVVisionGraph(store: WeightStore, cfg: MiniCPMVConfig, quant: SessionQuant = null): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const v = cfg.vision;
  const D = v.hiddenSize;
  const p = v.patchSize;
  const E = cfg.text.hiddenSize;
  const Q = cfg.queryNum;
  const side = Math.floor(v.imageSize / p);
  const I = MINICPMV_VISION;

  const pixels = g.input(I.pixels, DataType.FLOAT, ['pieces', 3, p, 'strip']);
  const positions = g.input(I.positions, DataType.INT64, ['pieces', 'patches']);
  const valid = g.input(I.valid, DataType.FLOAT, ['pieces', 'patches']);
  const keyPos = g.input(I.keyPos, DataType.FLOAT, ['pieces', 'patches', E]);

  // Patch l is pixels[:, :, :, l*p:(l+1)*p], flattened in (c, row, col) order, times the conv kernel.
  const patches = g.reshape(g.transpose(g.reshape(pixels, [0, 3, p, -1, p]), [0, 3, 1, 2, 4]), [0, -1, 3 * p * p]);
  let x = g.add(g.linearNoBias(patches, g.reshape(w.weight('vpm.embeddings.patch_embedding.weight', [D, 3, p, p]), [D, 3 * p * p])), w.weight('vpm.embeddings.patch_embedding.bias', [D]));
  x = g.add(x, g.gather(w.weight('vpm.embeddings.position_embedding.weight', [side * side, D]), positions, 0));

  // Padding patches are hidden as keys (every query row), as the reference's 4-D mask does.
  const L = g.slice(g.shape(valid), [1], [2], [0]);
  const keyBias = g.reshape(g.mul(g.sub(g.scalarFloat(1), valid), g.scalarFloat(MASK_MIN)), [0, 1, 1, -1]);
  const rows = (n: string) => g.concat([g.slice(g.shape(valid), [0], [1], [0]), g.constInt64([1]), n, L], 0);
  const visionBias = g.op('Expand', [keyBias, rows(L)]);
  const H = v.numHeads;
  for (let i = 0; i < v.numLayers; i++) {
    const pre = `vpm.encoder.layers.${i}`;
    x = g.withScope(`navit${i}`, () => {
      const h = layerNorm(ctx, x, `${pre}.layer_norm1`, D, v.layerNormEps);
      const q = linear(ctx, h, `${pre}.self_attn.q_proj`, D, D, true);
      const k = linear(ctx, h, `${pre}.self_attn.k_proj`, D, D, true);
      const vv = linear(ctx, h, `${pre}.self_attn.v_proj`, D, D, true);
      const att = g.op('MultiHeadAttention', [q, k, vv, '', '', visionBias], { num_heads: H, scale: { float: 1 / Math.sqrt(D / H) } }, { domain: 'com.microsoft' });
      const x1 = g.add(x, linear(ctx, att, `${pre}.self_attn.out_proj`, D, D, true));
      return g.add(x1, plainMlp(ctx, layerNorm(ctx, x1, `${pre}.layer_norm2`, D, v.layerNormEps), `${pre}.mlp.fc1`, `${pre}.mlp.fc2`, D, v.intermediateSize, D, v.activation));
    });
  }
  x = layerNorm(ctx, x, 'vpm.post_layernorm', D, v.layerNormEps);

  // Resampler: Q learned queries attend to the patches (2-D sin-cos positions on the keys only).
  const kv = layerNorm(ctx, D === E ? x : linear(ctx, x, 'resampler.kv_proj', D, E, false), 'resampler.ln_kv', E, 1e-6);
  const queries = layerNorm(ctx, w.weight('resampler.query', [Q, E]), 'resampler.ln_q', E, 1e-6);
  const inW = w.weight('resampler.attn.in_proj_weight', [3 * E, E]);
  const inB = w.weight('resampler.attn.in_proj_bias', [3 * E]);
  const part = (k: number, y: string) => g.add(g.linearNoBias(y, g.slice(inW, [k * E], [(k + 1) * E], [0])), g.slice(inB, [k * E], [(k + 1) * E], [0]));
  const batch = g.slice(g.shape(valid), [0], [1], [0]);
  const q = g.op('Expand', [g.reshape(part(0, queries), [1, Q, E]), g.concat([batch, g.constInt64([Q, E])], 0)]);
  const k = part(1, g.add(kv, keyPos));
  const vv = part(2, kv);
  const heads = E / 128;
  const resamplerBias = g.op('Expand', [keyBias, rows(g.constInt64([Q]))]);
  const att = g.op('MultiHeadAttention', [q, k, vv, '', '', resamplerBias], { num_heads: heads, scale: { float: 1 / Math.sqrt(E / heads) } }, { domain: 'com.microsoft' });
  const out = layerNorm(ctx, linear(ctx, att, 'resampler.attn.out_proj', E, E, true), 'resampler.ln_post', E, 1e-6);
  // proj is a plain [E, E] parameter used as (in x out).
  g.output(g.matmul(out, w.weight('resampler.proj', [E, E])), I.output, DataType.FLOAT, ['pieces', Q, E]);
  return { g, w };
}
