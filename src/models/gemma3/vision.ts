import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { clipTower } from '../clipTower.js';
import { LayerCtx, gemmaRmsNorm } from '../layers.js';
import { Gemma3Config } from './config.js';

export const GEMMA3_VISION = { pixels: 'pixel_values', output: 'image_features' } as const;

/**
 * The SigLIP tower (all layers, post-layernorm) and Gemma 3's projector as one graph:
 * pixel_values [images, 3, S, S] -> [images * mm_tokens_per_image, text hidden]. The
 * projector averages k x k patches, applies the soft-embedding RMSNorm (1 + w) and
 * multiplies by mm_input_projection_weight, stored [vision hidden, text hidden].
 */
export function buildGemma3VisionGraph(
  store: WeightStore,
  cfg: Gemma3Config,
  names: { vision: string; projector: string },
  quant: SessionQuant = null,
): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const v = cfg.vision;
  const D = v.hiddenSize;
  const S = v.imageSize;
  const G = Math.floor(S / v.patchSize);
  const side = Math.round(Math.sqrt(cfg.mmTokensPerImage));
  const k = G / side;
  const pixels = g.input(GEMMA3_VISION.pixels, DataType.FLOAT, ['images', 3, S, S]);
  const x = clipTower(ctx, v, pixels, names.vision, v.numLayers, true);
  // [images, G*G, D] -> [images, D, G, G] (patches row-major) -> k x k means -> [images * side^2, D].
  const grid = g.reshape(g.transpose(x, [0, 2, 1]), [0, D, G, G]);
  const pooled = g.op('AveragePool', [grid], { kernel_shape: [k, k], strides: [k, k] });
  const tokens = g.reshape(g.transpose(g.reshape(pooled, [0, D, side * side]), [0, 2, 1]), [-1, D]);
  const normed = gemmaRmsNorm(ctx, tokens, `${names.projector}.mm_soft_emb_norm.weight`, D, v.layerNormEps);
  const proj = g.matmul(normed, w.weight(`${names.projector}.mm_input_projection_weight`, [D, cfg.text.hiddenSize]));
  g.output(proj, GEMMA3_VISION.output, DataType.FLOAT, ['tokens', cfg.text.hiddenSize]);
  return { g, w };
}
