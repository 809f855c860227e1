import { ModelLoadError } from '../../errors.js';
import { Json, ModelConfig, TextConfig, num, parseRopeScaling, familyConfig } from '../config.js';

/** MllamaVisionConfig: tiles of image_size, local then gated global layers. */
export interface MllamaVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numGlobalLayers: number;
  numHeads: number;
  imageSize: number;
  patchSize: number;
  maxNumTiles: number;
  normEps: number;
  /** Inputs of these local layers are concatenated (interleaved) to the output. */
  intermediateLayers: number[];
  outputDim: number;
  /** Canvas arrangements (tiles high, tiles wide), in aspect_ratio_id order from 1. */
  aspectRatios: Array<[number, number]>;
}

/** A Llama 3.2 Vision config.json (`MllamaForConditionalGeneration`). */
export interface MllamaConfig extends ModelConfig {
  vision: MllamaVisionConfig;
  crossLayers: number[];
}

export function asMllamaConfig(c: ModelConfig): MllamaConfig {
  return familyConfig<MllamaConfig>(c, 'crossLayers', 'Llama 3.2 Vision');
}

/** MllamaConfig's defaults where config.json leaves a field out. */
export function parseMllamaConfig(raw: Json, architecture: string): MllamaConfig {
  const t: Json = raw.text_config ?? {};
  const v: Json = raw.vision_config ?? {};
  const w = 'text_config.';
  const hiddenSize = num(t, 'hidden_size', w, 4096);
  const numHeads = num(t, 'num_attention_heads', w, 32);
  const vocabSize = num(t, 'vocab_size', w, 128256);
  const crossLayers: number[] = Array.isArray(t.cross_attention_layers) ? t.cross_attention_layers : [3, 8, 13, 18, 23, 28, 33, 38];
  const act = t.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ModelLoadError(`config.json: ${w}hidden_act "${act}" is not supported (silu is)`);
  const text: TextConfig = {
    hiddenSize,
    intermediateSize: num(t, 'intermediate_size', w, 14336),
    numLayers: num(t, 'num_hidden_layers', w, 40),
    numHeads,
    numKvHeads: num(t, 'num_key_value_heads', w, 8),
    headDim: hiddenSize / numHeads,
    vocabSize,
    // The table has 8 more rows than the output: <|image|> (= vocab_size) and padding.
    embedRows: vocabSize + 8,
    rmsNormEps: num(t, 'rms_norm_eps', w, 1e-5),
    ropeTheta: num(t, 'rope_theta', w, 500000),
    tieWordEmbeddings: Boolean(t.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num(t, 'max_position_embeddings', w, 131072),
    ropeScaling: parseRopeScaling(t.rope_scaling, `${w}rope_scaling.`),
    crossAttentionLayers: crossLayers,
  };
  const maxNumTiles = num(v, 'max_num_tiles', 'vision_config.', 4);
  const ratios: Array<[number, number]> = Array.isArray(v.supported_aspect_ratios) ? v.supported_aspect_ratios : defaultAspectRatios(maxNumTiles);
  const intermediateLayers: number[] = Array.isArray(v.intermediate_layers_indices) ? v.intermediate_layers_indices : [3, 7, 15, 23, 30];
  const vHidden = num(v, 'hidden_size', 'vision_config.', 1280);
  const vision: MllamaVisionConfig = {
    hiddenSize: vHidden,
    intermediateSize: num(v, 'intermediate_size', 'vision_config.', 5120),
    numLayers: num(v, 'num_hidden_layers', 'vision_config.', 32),
    numGlobalLayers: num(v, 'num_global_layers', 'vision_config.', 8),
    numHeads: num(v, 'attention_heads', 'vision_config.', 16),
    imageSize: num(v, 'image_size', 'vision_config.', 448),
    patchSize: num(v, 'patch_size', 'vision_config.', 14),
    maxNumTiles,
    normEps: num(v, 'norm_eps', 'vision_config.', 1e-5),
    intermediateLayers,
    outputDim: num(v, 'vision_output_dim', 'vision_config.', vHidden * (intermediateLayers.length + 1)),
    aspectRatios: ratios,
  };
  if (vision.outputDim !== vHidden * (intermediateLayers.length + 1)) {
    throw new ModelLoadError(`config.json: vision_config.vision_output_dim ${vision.outputDim} must be hidden_size * (intermediate layers + 1)`);
  }
  const eos = t.eos_token_id ?? raw.eos_token_id ?? [128001, 128008, 128009];
  const imageTokenId = num(raw, 'image_token_index', '', 128256);
  return {
    architecture,
    modelType: String(raw.model_type ?? 'mllama'),
    text,
    imageTokenId,
    rawImageTokens: [imageTokenId],
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
    raw,
    vision,
    crossLayers,
  };
}

/** MllamaVisionConfig's supported_aspect_ratios: every (a, b) with a * b <= max tiles. */
function defaultAspectRatios(maxTiles: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let a = 1; a <= maxTiles; a++) for (let b = 1; b <= maxTiles; b++) if (a * b <= maxTiles) out.push([a, b]);
  return out;
}
