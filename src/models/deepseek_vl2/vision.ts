import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { LayerCtx, layerNorm, linear, patchEmbedding, plainMlp } from '../layers.js';
import { DeepseekVL2Config } from './config.js';

export const DSVL2_VISION = { pixels: 'pixel_values', output: 'tile_features' } as const;

/** Projector tokens per tile side: the patch grid padded to even, halved. */
export function deepseekTokensPerSide(cfg: DeepseekVL2Config): number {
  return Math.ceil(Math.floor(cfg.vision.imageSize / cfg.vision.patchSize) / cfg.projector.downsampleRatio);
}

/**
 * DeepSeek-VL2's timm-style SigLIP and downsample_mlp_gelu projector as one graph: tiles
 * [tiles, 3, S, S] -> [tiles, h * h, D]. The patch grid is padded with zeros to even, each 2x2
 * block's features concatenated channel-major, then the MLP (exact GELU).
 */
export function buildDeepseekVisionGraph(store: WeightStore, cfg: DeepseekVL2Config, quant: SessionQuant = null): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const v = cfg.vision;
  const C = v.width;
  const P = v.patchSize;
  const S = v.imageSize;
  const G = Math.floor(S / P);
  const pixels = g.input(DSVL2_VISION.pixels, DataType.FLOAT, ['tiles', 3, S, S]);
  let x = patchEmbedding(ctx, pixels, S, P, C, 'vision.patch_embed.proj.weight', 'vision.patch_embed.proj.bias');
  x = g.add(x, w.weight('vision.pos_embed', [1, G * G, C]));
  const H = v.heads;
  for (let i = 0; i < v.layers; i++) {
    const pre = `vision.blocks.${i}`;
    x = g.withScope(`sigl${i}`, () => {
      const h = layerNorm(ctx, x, `${pre}.norm1`, C, 1e-6);
      const [q, k, vv] = g.split(linear(ctx, h, `${pre}.attn.qkv`, C, 3 * C, true), [C, C, C], -1);
      const att = g.op('MultiHeadAttention', [q!, k!, vv!], { num_heads: H, scale: { float: 1 / Math.sqrt(C / H) } }, { domain: 'com.microsoft' });
      const x1 = g.add(x, linear(ctx, att, `${pre}.attn.proj`, C, C, true));
      return g.add(x1, plainMlp(ctx, layerNorm(ctx, x1, `${pre}.norm2`, C, 1e-6), `${pre}.mlp.fc1`, `${pre}.mlp.fc2`, C, v.mlpDim, C, 'gelu_pytorch_tanh'));
    });
  }
  x = layerNorm(ctx, x, 'vision.norm', C, 1e-6);

  // 2x2 unshuffle: feature ch * 4 + dy * 2 + dx of token (r, c) is channel ch of patch (2r + dy, 2c + dx).
  const h = deepseekTokensPerSide(cfg);
  const even = 2 * h;
  let grid = g.reshape(x, [-1, G, G, C]);
  if (even !== G) grid = g.op('Pad', [grid, g.constInt64([0, 0, 0, 0, 0, even - G, even - G, 0])]);
  const blocks = g.reshape(g.transpose(g.reshape(grid, [-1, h, 2, h, 2, C]), [0, 1, 3, 5, 2, 4]), [-1, h * h, 4 * C]);
  const pj = cfg.projector;
  const inner = pj.nEmbed * pj.mlpRatio;
  let y = linear(ctx, blocks, 'projector.layers.0', 4 * C, inner, true);
  for (let d = 1; d < pj.depth; d++) y = linear(ctx, g.gelu(y), `projector.layers.${2 * d}`, inner, d === pj.depth - 1 ? pj.nEmbed : inner, true);
  g.output(y, DSVL2_VISION.output, DataType.FLOAT, ['tiles', h * h, pj.nEmbed]);
  return { g, w };
}
