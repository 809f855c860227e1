import { ModelLoadError } from '../../errors.js';
import { ClipVisionConfig, parseClipVisionConfig } from '../clipTower.js';
import { Json, ModelConfig, TextConfig, num, parseRopeScaling, familyConfig } from '../config.js';

/**
 * A MiniCPM-V 2.6 config.json (`MiniCPMV`, model_type `minicpmv`): a Qwen2 decoder at the top
 * level, a NaViT-style SigLIP in `vision_config`, and the resampler's query count.
 */
export interface MiniCPMVConfig extends ModelConfig {
  vision: ClipVisionConfig;
  /** Resampler queries: image tokens per image or slice. */
  queryNum: number;
}

export function asMiniCPMVConfig(c: ModelConfig): MiniCPMVConfig {
  return familyConfig<MiniCPMVConfig>(c, 'queryNum', 'MiniCPM-V');
}

/** MiniCPMVConfig (a Qwen2Config) with its defaults; the image token is `<unk>`, found in the tokenizer. */
export function parseMiniCPMVConfig(raw: Json, architecture: string): MiniCPMVConfig {
  if (raw.drop_vision_last_layer === true) throw new ModelLoadError('config.json: drop_vision_last_layer true is not supported (MiniCPM-V 2.6 sets it false)');
  const hiddenSize = num(raw, 'hidden_size', '', 3584);
  const numHeads = num(raw, 'num_attention_heads', '', 28);
  if (hiddenSize % 128 !== 0) throw new ModelLoadError(`config.json: hidden_size ${hiddenSize} must be a multiple of 128 (the resampler has hidden_size / 128 heads)`);
  const text: TextConfig = {
    hiddenSize,
    intermediateSize: num(raw, 'intermediate_size', '', 18944),
    numLayers: num(raw, 'num_hidden_layers', '', 28),
    numHeads,
    numKvHeads: num(raw, 'num_key_value_heads', '', 4),
    headDim: hiddenSize / numHeads,
    vocabSize: num(raw, 'vocab_size', '', 151666),
    rmsNormEps: num(raw, 'rms_norm_eps', '', 1e-6),
    ropeTheta: num(raw, 'rope_theta', '', 1e6),
    tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num(raw, 'max_position_embeddings', '', 32768),
    ropeScaling: parseRopeScaling(raw.rope_scaling, 'rope_scaling.'),
  };
  const v: Json = raw.vision_config ?? {};
  // NaViT SigLIP (its config's model_type is "siglip"): SiglipVisionConfig's LayerNorm eps and
  // tanh GELU, MiniCPM-V 2.6's sizes by default.
  const vision = parseClipVisionConfig({
    hidden_size: 1152,
    intermediate_size: 4304,
    num_hidden_layers: 27,
    num_attention_heads: 16,
    image_size: 980,
    patch_size: 14,
    ...v,
    model_type: 'siglip_vision_model',
  });
  const eos = raw.eos_token_id ?? 151645;
  return {
    architecture,
    modelType: String(raw.model_type ?? 'minicpmv'),
    text,
    // Set from the tokenizer's <unk> when the image processor loads (see processor.ts).
    imageTokenId: -1,
    rawImageTokens: [],
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
    raw,
    vision,
    queryNum: num(raw, 'query_num', '', 64),
  };
}
