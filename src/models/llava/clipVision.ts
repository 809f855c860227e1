import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { ClipVisionConfig, clipTower } from '../clipTower.js';
import { LayerCtx, linear } from '../layers.js';

export const CLIP_INPUTS = { pixels: 'pixel_values', output: 'image_features' } as const;
/** What LLaVA takes from the tower: the output of one layer, with or without the class token. */
export interface FeatureSelection {
  /** Index into hidden_states (0 = the embeddings after pre_layrnorm; negative counts from the end). */
  layer: number;
  dropClassToken: boolean;
}

/**
 * The CLIP vision tower and LLaVA's two-layer projector as one graph: pixel_values
 * [images, 3, S, S] -> image features [images * tokens, textHidden], in the order the
 * image tokens take them. Only the layers up to the selected hidden state run.
 */
export function buildClipVisionGraph(
  store: WeightStore,
  cfg: ClipVisionConfig,
  select: FeatureSelection,
  projector: { prefix: string; textHidden: number },
  prefix = 'vision_tower.vision_model',
  quant: SessionQuant = null,
): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const D = cfg.hiddenSize;
  const G = Math.floor(cfg.imageSize / cfg.patchSize);
  const S = cfg.imageSize;
  const siglip = cfg.kind === 'siglip';
  const pixels = g.input(CLIP_INPUTS.pixels, DataType.FLOAT, ['images', 3, S, S]);
  // hidden_states[k] is the output of layer k - 1 (k = 0: the embeddings); later layers never run.
  const layers = select.layer < 0 ? cfg.numLayers + 1 + select.layer : select.layer;
  const x = clipTower(ctx, cfg, pixels, prefix, layers);
  const features = select.dropClassToken && !siglip ? g.slice(x, [1], [G * G + 1], [1]) : x;
  const flat = g.reshape(features, [-1, D]);
  const { prefix: pp, textHidden } = projector;
  const out = linear(ctx, g.gelu(linear(ctx, flat, `${pp}.linear_1`, D, textHidden, true)), `${pp}.linear_2`, textHidden, textHidden, true);
  g.output(out, CLIP_INPUTS.output, DataType.FLOAT, ['tokens', textHidden]);
  return { g, w };
}
