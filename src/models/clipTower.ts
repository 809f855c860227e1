import { Json, num } from './config.js';
import { Activation, LayerCtx, layerNorm, linear, patchEmbedding, plainMlp } from './layers.js';

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

/**
 * A CLIP or SigLIP tower over pixels [images, 3, S, S]: patch embedding (+ class token and
 * pre-layernorm for CLIP), then `layers` encoder layers; SigLIP's post_layernorm when asked.
 * Returns [images, tokens, hidden]: hidden_states[layers] of the reference (CLIP keeps its
 * class token first).
 */
export function clipTower(ctx: LayerCtx, cfg: ClipVisionConfig, pixels: string, prefix: string, layers: number, postLayerNorm = false): string {
  const { g, w } = ctx;
  const D = cfg.hiddenSize;
  const P = cfg.patchSize;
  // A "valid" convolution: pixels past the last whole patch are not read.
  const G = Math.floor(cfg.imageSize / P);
  const S = cfg.imageSize;
  const siglip = cfg.kind === 'siglip';
  const patchEmb = patchEmbedding(ctx, pixels, S, P, D, `${prefix}.embeddings.patch_embedding.weight`, siglip ? `${prefix}.embeddings.patch_embedding.bias` : undefined);
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
  return postLayerNorm ? layerNorm(ctx, x, `${prefix}.post_layernorm`, D, cfg.layerNormEps) : x;
}
