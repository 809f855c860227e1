import { ModelLoadError } from '../../errors.js';
import { Json, ModelConfig, TextConfig, num, parseRopeScaling, familyConfig } from '../config.js';
import { ClipVisionConfig, parseClipVisionConfig } from '../clipTower.js';

/**
 * A LLaVA-1.5 or LLaVA-NeXT config.json (`LlavaForConditionalGeneration`,
 * `LlavaNextForConditionalGeneration`): a CLIP tower, a projector, a Llama or Mistral decoder.
 */
export interface LlavaConfig extends ModelConfig {
  vision: ClipVisionConfig;
  /** hidden_states index the image features are taken from (negative: from the end). */
  visionFeatureLayer: number;
  /** "default" drops the class token; "full" keeps it. */
  dropClassToken: boolean;
  /** LLaVA-NeXT and -OneVision: the anyres canvases (height, width); null for LLaVA-1.5. */
  pinpoints: Array<[number, number]> | null;
  /** LLaVA-OneVision's anyres_max_N: larger feature maps are downscaled to N tiles' worth. */
  maxAnyresPatches: number | null;
  /** The decoder has q/k/v biases (Qwen2, as in OneVision). */
  qkvBias: boolean;
}

export function asLlavaConfig(c: ModelConfig): LlavaConfig {
  return familyConfig<LlavaConfig>(c, 'visionFeatureLayer', 'LLaVA');
}

export function parseLlavaConfig(raw: Json, architecture: string): LlavaConfig {
  const t: Json = raw.text_config ?? {};
  const hiddenSize = num(t, 'hidden_size', 'text_config.', 4096);
  const numHeads = num(t, 'num_attention_heads', 'text_config.', 32);
  const text: TextConfig = {
    hiddenSize,
    intermediateSize: num(t, 'intermediate_size', 'text_config.', 11008),
    numLayers: num(t, 'num_hidden_layers', 'text_config.', 32),
    numHeads,
    numKvHeads: num(t, 'num_key_value_heads', 'text_config.', numHeads),
    headDim: num(t, 'head_dim', 'text_config.', hiddenSize / numHeads),
    vocabSize: num(t, 'vocab_size', 'text_config.', num(raw, 'vocab_size', '', 32064)),
    rmsNormEps: num(t, 'rms_norm_eps', 'text_config.', 1e-6),
    ropeTheta: num(t, 'rope_theta', 'text_config.', 10000),
    tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? t.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num(t, 'max_position_embeddings', 'text_config.', 4096),
    ropeScaling: parseRopeScaling(t.rope_scaling, 'text_config.rope_scaling.'),
  };
  const anyres = architecture !== 'LlavaForConditionalGeneration';
  if (anyres && !Array.isArray(raw.image_grid_pinpoints)) throw new ModelLoadError('config.json: image_grid_pinpoints is missing');
  const layer = raw.vision_feature_layer ?? -2;
  if (typeof layer !== 'number') throw new ModelLoadError('config.json: vision_feature_layer must be one number (lists of layers are not supported yet)');
  const strategy = raw.vision_feature_select_strategy ?? 'default';
  if (strategy !== 'default' && strategy !== 'full') throw new ModelLoadError(`config.json: unknown vision_feature_select_strategy ${JSON.stringify(strategy)}`);
  const imageTokenId = num(raw, 'image_token_index', '', 32000);
  const eos = t.eos_token_id ?? raw.eos_token_id;
  return {
    architecture,
    modelType: String(raw.model_type ?? ''),
    text,
    vision: parseClipVisionConfig(raw.vision_config ?? {}),
    visionFeatureLayer: layer,
    dropClassToken: strategy === 'default',
    pinpoints: anyres ? ((raw.image_grid_pinpoints as Array<[number, number]> | undefined) ?? null) : null,
    maxAnyresPatches: typeof raw.vision_aspect_ratio === 'string' && /^anyres_max_\d+$/.test(raw.vision_aspect_ratio) ? Number(raw.vision_aspect_ratio.slice('anyres_max_'.length)) : null,
    qkvBias: t.model_type === 'qwen2',
    imageTokenId,
    rawImageTokens: [imageTokenId],
    eosTokenIds: Array.isArray(eos) ? eos : typeof eos === 'number' ? [eos] : [],
    raw,
  };
}
