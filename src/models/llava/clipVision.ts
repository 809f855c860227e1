import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { Json, num } from '../config.js';
import { Activation, LayerCtx, layerNorm, linear, plainMlp } from '../layers.js';

/**
 * A CLIP or SigLIP vision tower's hyper-parameters (config.json `vision_config`, with
 * CLIPVisionConfig's or SiglipVisionConfig's defaults). SigLIP has no class token and no
 * pre-layernorm, and its patch embedding has a bias.
 */
export interface ClipVisionConfig {
  kind: 'clip' | 'siglip';
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
  activation: Activation;
}

export function parseClipVisionConfig(v: Json): ClipVisionConfig {
  const siglip = v.model_type === 'siglip_vision_model';
  return {
    kind: siglip ? 'siglip' : 'clip',
    hiddenSize: num(v, 'hidden_size', 'vision_config.', 768),
    intermediateSize: num(v, 'intermediate_size', 'vision_config.', 3072),
    numLayers: num(v, 'num_hidden_layers', 'vision_config.', 12),
    numHeads: num(v, 'num_attention_heads', 'vision_config.', 12),
    imageSize: num(v, 'image_size', 'vision_config.', 224),
    patchSize: num(v, 'patch_size', 'vision_config.', siglip ? 16 : 32),
    layerNormEps: num(v, 'layer_norm_eps', 'vision_config.', siglip ? 1e-6 : 1e-5),
    activation: (v.hidden_act as Activation | undefined) ?? (siglip ? 'gelu_pytorch_tanh' : 'quick_gelu'),
  };
}

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
  const P = cfg.patchSize;
  // A "valid" convolution: pixels past the last whole patch are not read.
  const G = Math.floor(cfg.imageSize / P);
  const S = cfg.imageSize;
  const siglip = cfg.kind === 'siglip';

  const pixels = g.input(CLIP_INPUTS.pixels, DataType.FLOAT, ['images', 3, S, S]);
  const used = G * P === S ? pixels : g.slice(pixels, [0, 0], [G * P, G * P], [2, 3]);
  // Conv2d with kernel == stride: each patch (c, y, x) flattened, times the kernel.
  const patches = g.reshape(g.transpose(g.reshape(used, [-1, 3, G, P, G, P]), [0, 2, 4, 1, 3, 5]), [-1, G * G, 3 * P * P]);
  const kernel = g.reshape(w.weight(`${prefix}.embeddings.patch_embedding.weight`, [D, 3, P, P]), [D, 3 * P * P]);
  let patchEmb = g.linearNoBias(patches, kernel);
  if (siglip) patchEmb = g.add(patchEmb, w.weight(`${prefix}.embeddings.patch_embedding.bias`, [D]));
  let x: string;
  if (siglip) {
    x = g.add(patchEmb, w.weight(`${prefix}.embeddings.position_embedding.weight`, [G * G, D]));
  } else {
    // The class embedding as token 0 of every image, then position embeddings and the pre-layernorm.
    const batch = g.slice(g.shape(pixels), [0], [1], [0]);
    const cls = g.op('Expand', [g.reshape(w.weight(`${prefix}.embeddings.class_embedding`, [D]), [1, 1, D]), g.concat([batch, g.constInt64([1, D])], 0)]);
    x = g.add(g.concat([cls, patchEmb], 1), w.weight(`${prefix}.embeddings.position_embedding.weight`, [G * G + 1, D]));
    x = layerNorm(ctx, x, `${prefix}.pre_layrnorm`, D, cfg.layerNormEps);
  }

  // hidden_states[k] is the output of layer k - 1 (k = 0: the embeddings).
  const layers = select.layer < 0 ? cfg.numLayers + 1 + select.layer : select.layer;
  const H = cfg.numHeads;
  for (let i = 0; i < layers; i++) {
    const p = `${prefix}.encoder.layers.${i}`;
    x = g.withScope(`clip${i}`, () => {
      const h = layerNorm(ctx, x, `${p}.layer_norm1`, D, cfg.layerNormEps);
      const q = linear(ctx, h, `${p}.self_attn.q_proj`, D, D, true);
      const k = linear(ctx, h, `${p}.self_attn.k_proj`, D, D, true);
      const v = linear(ctx, h, `${p}.self_attn.v_proj`, D, D, true);
      const attn = g.op('MultiHeadAttention', [q, k, v], { num_heads: H, scale: { float: 1 / Math.sqrt(D / H) } }, { domain: 'com.microsoft' });
      const x1 = g.add(x, linear(ctx, attn, `${p}.self_attn.out_proj`, D, D, true));
      const h2 = layerNorm(ctx, x1, `${p}.layer_norm2`, D, cfg.layerNormEps);
      return g.add(x1, plainMlp(ctx, h2, `${p}.mlp.fc1`, `${p}.mlp.fc2`, D, cfg.intermediateSize, D, cfg.activation));
    });
  }
  const features = select.dropClassToken && !siglip ? g.slice(x, [1], [G * G + 1], [1]) : x;
  const flat = g.reshape(features, [-1, D]);
  const { prefix: pp, textHidden } = projector;
  const out = linear(ctx, g.gelu(linear(ctx, flat, `${pp}.linear_1`, D, textHidden, true)), `${pp}.linear_2`, textHidden, textHidden, true);
  g.output(out, CLIP_INPUTS.output, DataType.FLOAT, ['tokens', textHidden]);
  return { g, w };
}
