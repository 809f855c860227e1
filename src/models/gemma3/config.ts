import { ModelLoadError } from '../../errors.js';
import { ClipVisionConfig, parseClipVisionConfig } from '../clipTower.js';
import { Json, ModelConfig, TextConfig, num, parseRopeScaling, familyConfig } from '../config.js';

/**
 * A Gemma 3 config.json (`Gemma3ForConditionalGeneration`): a SigLIP tower, the pooling
 * projector, and a decoder of sliding-window and global layers.
 */
export interface Gemma3Config extends ModelConfig {
  vision: ClipVisionConfig;
  /** Image tokens per image after pooling (256 in the releases). */
  mmTokensPerImage: number;
  boiTokenId: number;
  eoiTokenId: number;
}

export function asGemma3Config(c: ModelConfig): Gemma3Config {
  return familyConfig<Gemma3Config>(c, 'mmTokensPerImage', 'Gemma 3');
}

/** Gemma3TextConfig's defaults where config.json leaves a field out. */
export function parseGemma3Config(raw: Json, architecture: string): Gemma3Config {
  const t: Json = raw.text_config ?? {};
  const w = 'text_config.';
  for (const k of ['final_logit_softcapping', 'attn_logit_softcapping']) {
    if (t[k] !== null && t[k] !== undefined) throw new ModelLoadError(`config.json: ${w}${k} is not supported (Gemma 3 releases set it to null)`);
  }
  const numLayers = num(t, 'num_hidden_layers', w, 26);
  const pattern = num(t, 'sliding_window_pattern', w, 6);
  const window = num(t, 'sliding_window', w, 4096);
  const queryPreAttnScalar = num(t, 'query_pre_attn_scalar', w, 256);
  const text: TextConfig = {
    hiddenSize: num(t, 'hidden_size', w, 2304),
    intermediateSize: num(t, 'intermediate_size', w, 9216),
    numLayers,
    numHeads: num(t, 'num_attention_heads', w, 8),
    numKvHeads: num(t, 'num_key_value_heads', w, 4),
    headDim: num(t, 'head_dim', w, 256),
    vocabSize: num(t, 'vocab_size', w, 262208),
    rmsNormEps: num(t, 'rms_norm_eps', w, 1e-6),
    ropeTheta: num(t, 'rope_theta', w, 1e6),
    tieWordEmbeddings: Boolean(t.tie_word_embeddings ?? raw.tie_word_embeddings ?? true),
    maxPositionEmbeddings: num(t, 'max_position_embeddings', w, 131072),
    ropeScaling: parseRopeScaling(t.rope_scaling, `${w}rope_scaling.`),
    // Every pattern-th layer is global; the others see the last `sliding_window` tokens.
    layerWindows: Array.from({ length: numLayers }, (_, i) => ((i + 1) % pattern === 0 ? null : window)),
    localRopeTheta: num(t, 'rope_local_base_freq', w, 10000),
    gemmaNorms: true,
    hiddenAct: 'gelu_pytorch_tanh',
    attnScale: 1 / Math.sqrt(queryPreAttnScalar),
  };
  const act = t.hidden_activation ?? t.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') throw new ModelLoadError(`config.json: ${w}hidden_activation "${act}" is not supported (gelu_pytorch_tanh is)`);
  const vision = parseClipVisionConfig({ model_type: 'siglip_vision_model', ...(raw.vision_config ?? {}) });
  const mmTokensPerImage = num(raw, 'mm_tokens_per_image', '', 256);
  const side = Math.round(Math.sqrt(mmTokensPerImage));
  const patches = Math.floor(vision.imageSize / vision.patchSize);
  if (side * side !== mmTokensPerImage || patches % side !== 0) {
    throw new ModelLoadError(`config.json: mm_tokens_per_image ${mmTokensPerImage} must be a square whose side divides the ${patches} patches per side`);
  }
  const eos = raw.eos_token_id ?? t.eos_token_id ?? [1, 106];
  return {
    architecture,
    modelType: String(raw.model_type ?? 'gemma3'),
    text,
    imageTokenId: num(raw, 'image_token_index', '', 262144),
    rawImageTokens: [num(raw, 'boi_token_index', '', 255999)],
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
    raw,
    vision,
    mmTokensPerImage,
    boiTokenId: num(raw, 'boi_token_index', '', 255999),
    eoiTokenId: num(raw, 'eoi_token_index', '', 256000),
  };
}
