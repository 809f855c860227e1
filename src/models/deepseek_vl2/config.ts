import { ModelLoadError } from '../../errors.js';
import { Json, ModelConfig, TextConfig, num, parseRopeScaling, familyConfig } from '../config.js';

/** DeepSeek-VL2's timm-style SigLIP (`vision_config`). */
export interface DeepseekVisionConfig {
  width: number;
  layers: number;
  heads: number;
  mlpDim: number;
  patchSize: number;
  imageSize: number;
}

/** `projector_config` of the downsample_mlp_gelu projector. */
export interface DeepseekProjectorConfig {
  inputDim: number;
  nEmbed: number;
  depth: number;
  mlpRatio: number;
  downsampleRatio: number;
}

/** A DeepSeek-VL2 config.json (`DeepseekVLV2ForCausalLM`): SigLIP tiles, a projector, a DeepseekV2 decoder. */
export interface DeepseekVL2Config extends ModelConfig {
  vision: DeepseekVisionConfig;
  projector: DeepseekProjectorConfig;
}

export function asDeepseekVL2Config(c: ModelConfig): DeepseekVL2Config {
  return familyConfig<DeepseekVL2Config>(c, 'projector', 'DeepSeek-VL2');
}

/** DeepseekV2Config's defaults where language_config leaves a field out; the image token comes from the tokenizer. */
export function parseDeepseekVL2Config(raw: Json, architecture: string): DeepseekVL2Config {
  const t: Json = raw.language_config ?? {};
  const w = 'language_config.';
  const topkMethod = t.topk_method ?? 'gready';
  if (t.n_routed_experts && !['greedy', 'gready', 'noaux_tc'].includes(topkMethod)) throw new ModelLoadError(`config.json: ${w}topk_method "${topkMethod}" is not supported (greedy and noaux_tc are)`);
  if (t.attention_bias) throw new ModelLoadError(`config.json: ${w}attention_bias true is not supported`);
  const useMla = Boolean(t.use_mla ?? true);
  const hiddenSize = num(t, 'hidden_size', w, 2048);
  const numHeads = num(t, 'num_attention_heads', w, 16);
  const text: TextConfig = {
    hiddenSize,
    intermediateSize: num(t, 'intermediate_size', w, 10944),
    numLayers: num(t, 'num_hidden_layers', w, 27),
    numHeads,
    numKvHeads: num(t, 'num_key_value_heads', w, numHeads),
    headDim: hiddenSize / numHeads,
    vocabSize: num(t, 'vocab_size', w, 102400),
    rmsNormEps: num(t, 'rms_norm_eps', w, 1e-6),
    ropeTheta: num(t, 'rope_theta', w, 10000),
    tieWordEmbeddings: Boolean(t.tie_word_embeddings ?? false),
    maxPositionEmbeddings: num(t, 'max_position_embeddings', w, 4096),
    ropeScaling: parseRopeScaling(t.rope_scaling, `${w}rope_scaling.`),
    mla: useMla
      ? {
          qLoraRank: t.q_lora_rank ?? null,
          kvLoraRank: num(t, 'kv_lora_rank', w),
          ropeDim: num(t, 'qk_rope_head_dim', w),
          nopeDim: num(t, 'qk_nope_head_dim', w),
          vDim: num(t, 'v_head_dim', w),
        }
      : undefined,
    moe: t.n_routed_experts
      ? {
          firstDense: num(t, 'first_k_dense_replace', w, 0),
          layerFreq: num(t, 'moe_layer_freq', w, 1),
          experts: num(t, 'n_routed_experts', w),
          topK: num(t, 'num_experts_per_tok', w),
          intermediateSize: num(t, 'moe_intermediate_size', w),
          shared: num(t, 'n_shared_experts', w, 0),
          scoring: (t.scoring_func ?? 'softmax') === 'sigmoid' ? 'sigmoid' : 'softmax',
          normTopK: Boolean(t.norm_topk_prob ?? false),
          scalingFactor: num(t, 'routed_scaling_factor', w, 1),
          method: topkMethod === 'noaux_tc' ? 'noaux_tc' : 'greedy',
          groups: num(t, 'n_group', w, 1),
          topKGroups: num(t, 'topk_group', w, 1),
        }
      : undefined,
  };
  const v: Json = raw.vision_config ?? {};
  const width = num(v, 'width', 'vision_config.', 1152);
  const vision: DeepseekVisionConfig = {
    width,
    layers: num(v, 'layers', 'vision_config.', 27),
    heads: num(v, 'heads', 'vision_config.', 16),
    mlpDim: Math.trunc(width * num(v, 'mlp_ratio', 'vision_config.', 3.7362)),
    patchSize: num(v, 'patch_size', 'vision_config.', 14),
    imageSize: num(v, 'image_size', 'vision_config.', 384),
  };
  const pj: Json = raw.projector_config ?? {};
  if ((pj.projector_type ?? 'downsample_mlp_gelu') !== 'downsample_mlp_gelu') throw new ModelLoadError(`config.json: projector_config.projector_type "${pj.projector_type}" is not supported (downsample_mlp_gelu is)`);
  if ((raw.tile_tag ?? '2D') !== '2D') throw new ModelLoadError(`config.json: tile_tag "${raw.tile_tag}" is not supported (2D is)`);
  const projector: DeepseekProjectorConfig = {
    inputDim: num(pj, 'input_dim', 'projector_config.', width),
    nEmbed: num(pj, 'n_embed', 'projector_config.', hiddenSize),
    depth: num(pj, 'depth', 'projector_config.', 2),
    mlpRatio: num(pj, 'mlp_ratio', 'projector_config.', 1),
    downsampleRatio: num(pj, 'downsample_ratio', 'projector_config.', 2),
  };
  const eos = t.eos_token_id ?? raw.eos_token_id ?? 1;
  return {
    architecture,
    modelType: String(raw.model_type ?? 'deepseek_vl_v2'),
    text,
    // `<image>`: set from the tokenizer when the image processor loads.
    imageTokenId: -1,
    rawImageTokens: [],
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
    raw,
    vision,
    projector,
  };
}
