import { ModelLoadError } from '../../errors.js';
import { Json, ModelConfig, TextConfig, num, familyConfig } from '../config.js';

export interface VisionConfig {
  kind: 'qwen2_vl' | 'qwen2_5_vl';
  depth: number;
  hiddenSize: number;
  numHeads: number;
  intermediateSize: number;
  outHiddenSize: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  inChannels: number;
  /** Qwen2.5-VL only: window side in pixels, and blocks with full attention. */
  windowSize: number;
  fullAttBlockIndexes: number[];
  activation: 'silu' | 'quick_gelu' | 'gelu';
}

/** A Qwen2-VL / Qwen2.5-VL config.json. */
export interface Qwen2VLConfig extends ModelConfig {
  vision: VisionConfig;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
}

export function asQwen2VLConfig(c: ModelConfig): Qwen2VLConfig {
  return familyConfig<Qwen2VLConfig>(c, 'visionStartTokenId', 'Qwen2-VL family');
}


/** Parses config.json of a Qwen2-VL / Qwen2.5-VL checkpoint, accepting both spellings used in the wild. */
export function parseQwen2VLConfig(raw: Json, architecture: string): Qwen2VLConfig {
  // Newer transformers nest the text settings under text_config.
  const t: Json = { ...raw, ...(raw.text_config ?? {}) };
  const hiddenSize = num(t, 'hidden_size', '');
  const numHeads = num(t, 'num_attention_heads', '');
  const headDim = hiddenSize / numHeads;
  const rs: Json = t.rope_scaling ?? raw.rope_scaling ?? {};
  const section = rs.mrope_section as number[] | undefined;
  if (!section || section.length !== 3) throw new ModelLoadError('config.json: rope_scaling.mrope_section must list three numbers');
  if (section[0]! + section[1]! + section[2]! !== headDim / 2) {
    throw new ModelLoadError(`config.json: mrope_section ${JSON.stringify(section)} must sum to head_dim/2 = ${headDim / 2}`);
  }
  const text: TextConfig = {
    hiddenSize,
    intermediateSize: num(t, 'intermediate_size', ''),
    numLayers: num(t, 'num_hidden_layers', ''),
    numHeads,
    numKvHeads: num(t, 'num_key_value_heads', '', numHeads),
    headDim,
    vocabSize: num(t, 'vocab_size', ''),
    rmsNormEps: num(t, 'rms_norm_eps', '', 1e-6),
    ropeTheta: num(t, 'rope_theta', '', 1000000),
    mropeSection: [section[0]!, section[1]!, section[2]!],
    tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? t.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num(t, 'max_position_embeddings', '', 32768),
  };
  const v: Json = raw.vision_config ?? {};
  const is25 = architecture === 'Qwen2_5_VLForConditionalGeneration';
  let vision: VisionConfig;
  const common = {
    depth: num(v, 'depth', 'vision_config.'),
    numHeads: num(v, 'num_heads', 'vision_config.'),
    patchSize: num(v, 'patch_size', 'vision_config.', 14),
    temporalPatchSize: num(v, 'temporal_patch_size', 'vision_config.', 2),
    spatialMergeSize: num(v, 'spatial_merge_size', 'vision_config.', 2),
    inChannels: num(v, 'in_chans', 'vision_config.', num(v, 'in_channels', 'vision_config.', 3)),
  };
  if (is25) {
    vision = {
      kind: 'qwen2_5_vl',
      ...common,
      hiddenSize: num(v, 'hidden_size', 'vision_config.'),
      intermediateSize: num(v, 'intermediate_size', 'vision_config.'),
      outHiddenSize: num(v, 'out_hidden_size', 'vision_config.'),
      windowSize: num(v, 'window_size', 'vision_config.', 112),
      fullAttBlockIndexes: (v.fullatt_block_indexes as number[] | undefined) ?? [],
      activation: (v.hidden_act as 'silu') ?? 'silu',
    };
  } else {
    // In Qwen2-VL, embed_dim is the vision width and hidden_size the merger output.
    const embed = num(v, 'embed_dim', 'vision_config.');
    vision = {
      kind: 'qwen2_vl',
      ...common,
      hiddenSize: embed,
      intermediateSize: embed * num(v, 'mlp_ratio', 'vision_config.', 4),
      outHiddenSize: num(v, 'hidden_size', 'vision_config.'),
      windowSize: 0,
      fullAttBlockIndexes: [],
      activation: (v.hidden_act as 'quick_gelu') ?? 'quick_gelu',
    };
  }
  if (vision.outHiddenSize !== hiddenSize) {
    throw new ModelLoadError(`config.json: vision output width ${vision.outHiddenSize} differs from text hidden_size ${hiddenSize}`);
  }
  const eos = raw.eos_token_id;
  const imageTokenId = num(raw, 'image_token_id', '', 151655);
  const visionStartTokenId = num(raw, 'vision_start_token_id', '', 151652);
  const visionEndTokenId = num(raw, 'vision_end_token_id', '', 151653);
  return {
    architecture,
    modelType: String(raw.model_type ?? ''),
    text,
    vision,
    imageTokenId,
    rawImageTokens: [visionStartTokenId, imageTokenId, visionEndTokenId],
    videoTokenId: num(raw, 'video_token_id', '', 151656),
    visionStartTokenId,
    visionEndTokenId,
    eosTokenIds: Array.isArray(eos) ? eos : typeof eos === 'number' ? [eos] : [],
    raw,
  };
}
