/**
 * Random-weight checkpoints with the released shapes of the smallest Gemma 3 and Llama 3.2
 * Vision models, in the Hugging Face layout of the releases (transformers 4.50 weight names,
 * BF16 shards, config.json with the released values), for the benchmarks:
 *   - 'gemma3-4b': google/gemma-3-4b-it (Gemma3ForConditionalGeneration), 2 shards as released;
 *   - 'mllama-11b': meta-llama/Llama-3.2-11B-Vision-Instruct (MllamaForConditionalGeneration),
 *     5 shards as released.
 *
 * Where the values come from:
 *   - gemma-3-4b-it's config.json names only the fields below (the text_config and
 *     vision_config keys as released; copies of the file vendored in public repositories
 *     agree); transformers fills the rest from Gemma3TextConfig's and SiglipVisionConfig's
 *     defaults (vocab_size 262208, 8 heads, 4 KV heads, head_dim 256, query_pre_attn_scalar
 *     256, sliding_window_pattern 6, rope_theta 1e6, rope_local_base_freq 1e4,
 *     max_position_embeddings 131072; LayerNorm eps 1e-6), which Iris's loader applies
 *     the same way (src/models/gemma3/config.ts);
 *   - Llama-3.2-11B-Vision-Instruct's config.json spells out every field; below are its
 *     model fields (the text_config as inlined from the release by public training scripts,
 *     the vision_config and preprocessor_config.json as dumped in public notes on the
 *     release; the generic PretrainedConfig fields the release also writes, all at their
 *     defaults, are left out);
 *   - preprocessor_config.json: the released image sizes (896 with 256 tokens; 560-pixel
 *     tiles, at most 4); generation_config.json: the released token ids (the benchmark
 *     decodes greedily, so its sampling fields do not matter).
 *
 * The tokenizer files are the families' test fixtures' (a few hundred tokens), with their
 * special tokens moved to the released ids (and, for Gemma, the other tokens out of their
 * way), so that the chat template and the image tokens work; the benchmarks give their
 * prompts as token ids and need no real vocabulary.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PyFloat, TensorSpec, goldenModelDir, pythonJson, writeTensorFiles } from '../tools/checkpoint.js';
import type { QuantMode } from '../src/engine/memoryPlan.js';
import { QUANT_BLOCK_SIZES } from '../src/runtime/quant/policy.js';

export type FamilyCheckpointName = 'gemma3-4b' | 'mllama-11b' | 'deepseek-vl2-tiny';

const f = (v: number) => new PyFloat(v);

/** google/gemma-3-4b-it's config.json. */
export const GEMMA3_4B_CONFIG = {
  architectures: ['Gemma3ForConditionalGeneration'],
  boi_token_index: 255999,
  eoi_token_index: 256000,
  eos_token_id: [1, 106],
  image_token_index: 262144,
  initializer_range: f(0.02),
  mm_tokens_per_image: 256,
  model_type: 'gemma3',
  text_config: {
    hidden_size: 2560,
    intermediate_size: 10240,
    model_type: 'gemma3_text',
    num_hidden_layers: 34,
    rope_scaling: { factor: f(8.0), rope_type: 'linear' },
    sliding_window: 1024,
  },
  torch_dtype: 'bfloat16',
  transformers_version: '4.50.0.dev0',
  vision_config: {
    hidden_size: 1152,
    image_size: 896,
    intermediate_size: 4304,
    model_type: 'siglip_vision_model',
    num_attention_heads: 16,
    num_hidden_layers: 27,
    patch_size: 14,
    vision_use_head: false,
  },
};

/** Gemma3TextConfig's defaults (transformers 4.50) for the fields gemma-3-4b-it leaves out. */
const GEMMA3_TEXT_DEFAULTS = { vocabSize: 262208, numHeads: 8, numKvHeads: 4, headDim: 256 };

/** meta-llama/Llama-3.2-11B-Vision-Instruct's config.json (its model fields). */
export const MLLAMA_11B_CONFIG = {
  architectures: ['MllamaForConditionalGeneration'],
  image_token_index: 128256,
  model_type: 'mllama',
  text_config: {
    bos_token_id: 128000,
    cross_attention_layers: [3, 8, 13, 18, 23, 28, 33, 38],
    dropout: 0,
    eos_token_id: [128001, 128008, 128009],
    hidden_act: 'silu',
    hidden_size: 4096,
    initializer_range: f(0.02),
    intermediate_size: 14336,
    max_position_embeddings: 131072,
    model_type: 'mllama_text_model',
    num_attention_heads: 32,
    num_hidden_layers: 40,
    num_key_value_heads: 8,
    pad_token_id: 128004,
    rms_norm_eps: f(1e-5),
    rope_scaling: { factor: f(8.0), high_freq_factor: f(4.0), low_freq_factor: f(1.0), original_max_position_embeddings: 8192, rope_type: 'llama3' },
    rope_theta: f(500000.0),
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    use_cache: true,
    vocab_size: 128256,
  },
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  vision_config: {
    attention_heads: 16,
    hidden_act: 'gelu',
    hidden_size: 1280,
    image_size: 560,
    intermediate_layers_indices: [3, 7, 15, 23, 30],
    intermediate_size: 5120,
    max_num_tiles: 4,
    model_type: 'mllama_vision_model',
    norm_eps: f(1e-5),
    num_channels: 3,
    num_global_layers: 8,
    num_hidden_layers: 32,
    patch_size: 14,
    supported_aspect_ratios: [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    vision_output_dim: 7680,
  },
};

interface FamilyRelease {
  what: string;
  /** The test fixture whose tokenizer and chat files are copied. */
  fixture: 'gemma3' | 'mllama' | 'deepseek_vl2';
  shards: number;
  config: Record<string, any>;
  generationConfig: Record<string, unknown>;
  preprocessorConfig: Record<string, unknown>;
  /** processor_config.json, when the release has one. */
  processorConfig?: Record<string, unknown>;
  /** Special token -> its released id. */
  specialIds: Record<string, number>;
  /** Added to the ids of the fixture's other tokens (to keep them clear of the special ids). */
  shiftOthers: number;
  tensors(): TensorSpec[];
}

const STD = 0.02;
const mat = (name: string, shape: number[], std = STD): TensorSpec => ({ name, shape, dtype: 'BF16', init: { kind: 'normal', std } });
/** A LayerNorm / Llama RMSNorm scale: 1 + noise. */
const ones = (name: string, dim: number): TensorSpec => ({ name, shape: [dim], dtype: 'BF16', init: { kind: 'ones_noise', std: STD } });
/** A scalar gate (tanh-ed by the model): large enough that its branch matters. */
const gate = (name: string): TensorSpec => mat(name, [1], 0.5);

function gemma3Tensors(): TensorSpec[] {
  const out: TensorSpec[] = [];
  const c = GEMMA3_4B_CONFIG;
  const v = c.vision_config;
  const D = v.hidden_size;
  const G = Math.floor(v.image_size / v.patch_size);
  const p = 'vision_tower.vision_model';
  out.push(mat(`${p}.embeddings.patch_embedding.weight`, [D, 3, v.patch_size, v.patch_size]), mat(`${p}.embeddings.patch_embedding.bias`, [D]));
  out.push(mat(`${p}.embeddings.position_embedding.weight`, [G * G, D]));
  for (let i = 0; i < v.num_hidden_layers; i++) {
    const l = `${p}.encoder.layers.${i}`;
    out.push(ones(`${l}.layer_norm1.weight`, D), mat(`${l}.layer_norm1.bias`, [D]));
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) out.push(mat(`${l}.self_attn.${n}.weight`, [D, D]), mat(`${l}.self_attn.${n}.bias`, [D]));
    out.push(ones(`${l}.layer_norm2.weight`, D), mat(`${l}.layer_norm2.bias`, [D]));
    out.push(mat(`${l}.mlp.fc1.weight`, [v.intermediate_size, D]), mat(`${l}.mlp.fc1.bias`, [v.intermediate_size]));
    out.push(mat(`${l}.mlp.fc2.weight`, [D, v.intermediate_size]), mat(`${l}.mlp.fc2.bias`, [D]));
  }
  out.push(ones(`${p}.post_layernorm.weight`, D), mat(`${p}.post_layernorm.bias`, [D]));
  const t = c.text_config;
  const Hd = t.hidden_size;
  const { vocabSize, numHeads, numKvHeads, headDim } = GEMMA3_TEXT_DEFAULTS;
  // Gemma's RMSNorms scale by (1 + w): their weights are noise around 0.
  const gnorm = (name: string, dim: number) => mat(name, [dim]);
  out.push(mat('multi_modal_projector.mm_input_projection_weight', [D, Hd]), gnorm('multi_modal_projector.mm_soft_emb_norm.weight', D));
  const m = 'language_model.model';
  out.push(mat(`${m}.embed_tokens.weight`, [vocabSize, Hd]));
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const l = `${m}.layers.${i}`;
    out.push(gnorm(`${l}.input_layernorm.weight`, Hd));
    out.push(mat(`${l}.self_attn.q_proj.weight`, [numHeads * headDim, Hd]), mat(`${l}.self_attn.k_proj.weight`, [numKvHeads * headDim, Hd]));
    out.push(mat(`${l}.self_attn.v_proj.weight`, [numKvHeads * headDim, Hd]), mat(`${l}.self_attn.o_proj.weight`, [Hd, numHeads * headDim]));
    out.push(gnorm(`${l}.self_attn.q_norm.weight`, headDim), gnorm(`${l}.self_attn.k_norm.weight`, headDim));
    out.push(gnorm(`${l}.post_attention_layernorm.weight`, Hd), gnorm(`${l}.pre_feedforward_layernorm.weight`, Hd));
    out.push(mat(`${l}.mlp.gate_proj.weight`, [t.intermediate_size, Hd]), mat(`${l}.mlp.up_proj.weight`, [t.intermediate_size, Hd]));
    out.push(mat(`${l}.mlp.down_proj.weight`, [Hd, t.intermediate_size]), gnorm(`${l}.post_feedforward_layernorm.weight`, Hd));
  }
  out.push(gnorm(`${m}.norm.weight`, Hd));
  return out;
}

function mllamaTensors(): TensorSpec[] {
  const out: TensorSpec[] = [];
  const c = MLLAMA_11B_CONFIG;
  const v = c.vision_config;
  const D = v.hidden_size;
  const T = v.max_num_tiles;
  const G = Math.floor(v.image_size / v.patch_size);
  const P = G * G + 1;
  const R = v.supported_aspect_ratios.length + 1;
  const p = 'vision_model';
  out.push(mat(`${p}.patch_embedding.weight`, [D, 3, v.patch_size, v.patch_size]), mat(`${p}.class_embedding`, [D]));
  out.push(mat(`${p}.gated_positional_embedding.embedding`, [P, D]), gate(`${p}.gated_positional_embedding.gate`));
  out.push(mat(`${p}.gated_positional_embedding.tile_embedding.weight`, [R, T * P * D]));
  for (const n of ['pre_tile_positional_embedding', 'post_tile_positional_embedding']) out.push(mat(`${p}.${n}.embedding.weight`, [R, T * D]), gate(`${p}.${n}.gate`));
  out.push(ones(`${p}.layernorm_pre.weight`, D), mat(`${p}.layernorm_pre.bias`, [D]), ones(`${p}.layernorm_post.weight`, D), mat(`${p}.layernorm_post.bias`, [D]));
  const layer = (l: string, gated: boolean) => {
    out.push(ones(`${l}.input_layernorm.weight`, D), mat(`${l}.input_layernorm.bias`, [D]));
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) out.push(mat(`${l}.self_attn.${n}.weight`, [D, D]));
    out.push(ones(`${l}.post_attention_layernorm.weight`, D), mat(`${l}.post_attention_layernorm.bias`, [D]));
    out.push(mat(`${l}.mlp.fc1.weight`, [v.intermediate_size, D]), mat(`${l}.mlp.fc1.bias`, [v.intermediate_size]));
    out.push(mat(`${l}.mlp.fc2.weight`, [D, v.intermediate_size]), mat(`${l}.mlp.fc2.bias`, [D]));
    if (gated) out.push(gate(`${l}.gate_attn`), gate(`${l}.gate_ffn`));
  };
  for (let i = 0; i < v.num_hidden_layers; i++) layer(`${p}.transformer.layers.${i}`, false);
  for (let i = 0; i < v.num_global_layers; i++) layer(`${p}.global_transformer.layers.${i}`, true);
  const t = c.text_config;
  const Hd = t.hidden_size;
  const hd = Hd / t.num_attention_heads;
  const KV = t.num_key_value_heads * hd;
  out.push(mat('multi_modal_projector.weight', [Hd, v.vision_output_dim]), mat('multi_modal_projector.bias', [Hd]));
  const m = 'language_model.model';
  // <|image|> and 7 padding rows follow the vocabulary in the embedding table.
  out.push(mat(`${m}.embed_tokens.weight`, [t.vocab_size + 8, Hd]));
  const cross = new Set(t.cross_attention_layers);
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const l = `${m}.layers.${i}`;
    if (cross.has(i)) {
      out.push(gate(`${l}.cross_attn_attn_gate`), gate(`${l}.cross_attn_mlp_gate`));
      out.push(mat(`${l}.cross_attn.q_proj.weight`, [Hd, Hd]), mat(`${l}.cross_attn.k_proj.weight`, [KV, Hd]), mat(`${l}.cross_attn.v_proj.weight`, [KV, Hd]));
      out.push(mat(`${l}.cross_attn.o_proj.weight`, [Hd, Hd]), ones(`${l}.cross_attn.q_norm.weight`, hd), ones(`${l}.cross_attn.k_norm.weight`, hd));
    } else {
      out.push(mat(`${l}.self_attn.q_proj.weight`, [Hd, Hd]), mat(`${l}.self_attn.k_proj.weight`, [KV, Hd]), mat(`${l}.self_attn.v_proj.weight`, [KV, Hd]));
      out.push(mat(`${l}.self_attn.o_proj.weight`, [Hd, Hd]));
    }
    out.push(mat(`${l}.mlp.gate_proj.weight`, [t.intermediate_size, Hd]), mat(`${l}.mlp.up_proj.weight`, [t.intermediate_size, Hd]));
    out.push(mat(`${l}.mlp.down_proj.weight`, [Hd, t.intermediate_size]));
    out.push(ones(`${l}.input_layernorm.weight`, Hd), ones(`${l}.post_attention_layernorm.weight`, Hd));
  }
  out.push(ones(`${m}.norm.weight`, Hd), mat('language_model.lm_head.weight', [t.vocab_size, Hd]));
  return out;
}

/** deepseek-ai/deepseek-vl2-tiny's config.json (model fields; MHA decoder with 64 experts, 6 active). */
export const DSVL2_TINY_CONFIG = {
  architectures: ['DeepseekVLV2ForCausalLM'],
  candidate_resolutions: [[384, 384], [384, 768], [768, 384], [384, 1152], [1152, 384], [384, 1536], [1536, 384], [768, 768], [384, 1920], [1920, 384], [384, 2304], [2304, 384], [768, 1152], [1152, 768], [384, 2688], [2688, 384], [384, 3072], [3072, 384], [768, 1536], [1536, 768], [384, 3456], [3456, 384], [1152, 1152]],
  global_view_pos: 'head',
  language_config: {
    architectures: ['DeepseekV2ForCausalLM'],
    bos_token_id: 0,
    eos_token_id: 1,
    first_k_dense_replace: 1,
    hidden_size: 1280,
    intermediate_size: 6848,
    kv_lora_rank: null,
    lm_head: true,
    max_position_embeddings: 4096,
    model_type: 'deepseek_v2',
    moe_intermediate_size: 896,
    n_group: 1,
    n_routed_experts: 64,
    n_shared_experts: 2,
    num_attention_heads: 10,
    num_experts_per_tok: 6,
    num_hidden_layers: 12,
    num_key_value_heads: 10,
    q_lora_rank: null,
    qk_nope_head_dim: 0,
    qk_rope_head_dim: 0,
    rm_head: false,
    topk_group: 1,
    topk_method: 'greedy',
    torch_dtype: 'bfloat16',
    use_mla: false,
    v_head_dim: 0,
    vocab_size: 129280,
  },
  model_type: 'deepseek_vl_v2',
  projector_config: { model_type: 'mlp_projector', n_embed: 1280, input_dim: 1152, projector_type: 'downsample_mlp_gelu', depth: 2, mlp_ratio: 1, downsample_ratio: 2 },
  tile_tag: '2D',
  torch_dtype: 'bfloat16',
  vision_config: { layers: 27, mlp_ratio: f(3.7362), model_name: 'siglip_so400m_patch14_384', model_type: 'vision', patch_size: 14, width: 1152, heads: 16, image_size: 384 },
};

function deepseekTensors(): TensorSpec[] {
  const out: TensorSpec[] = [];
  const c = DSVL2_TINY_CONFIG;
  const v = c.vision_config;
  const C = v.width;
  const G = Math.floor(v.image_size / v.patch_size);
  const mlp = Math.trunc(C * 3.7362);
  const ln = (p: string, d: number) => out.push(ones(`${p}.weight`, d), mat(`${p}.bias`, [d]));
  const lin = (p: string, o: number, i: number) => out.push(mat(`${p}.weight`, [o, i]), mat(`${p}.bias`, [o]));
  out.push(mat('vision.patch_embed.proj.weight', [C, 3, v.patch_size, v.patch_size]), mat('vision.patch_embed.proj.bias', [C]), mat('vision.pos_embed', [1, G * G, C]));
  for (let i = 0; i < v.layers; i++) {
    const b = `vision.blocks.${i}`;
    ln(`${b}.norm1`, C);
    lin(`${b}.attn.qkv`, 3 * C, C);
    lin(`${b}.attn.proj`, C, C);
    ln(`${b}.norm2`, C);
    lin(`${b}.mlp.fc1`, mlp, C);
    lin(`${b}.mlp.fc2`, C, mlp);
  }
  ln('vision.norm', C);
  const t = c.language_config;
  const H = t.hidden_size;
  lin('projector.layers.0', H, 4 * C);
  lin('projector.layers.2', H, H);
  out.push(mat('image_newline', [H]), mat('view_seperator', [H]));
  const m = 'language.model';
  out.push(mat(`${m}.embed_tokens.weight`, [t.vocab_size, H]));
  const ffn = (p: string, inner: number) => out.push(mat(`${p}.gate_proj.weight`, [inner, H]), mat(`${p}.up_proj.weight`, [inner, H]), mat(`${p}.down_proj.weight`, [H, inner]));
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const l = `${m}.layers.${i}`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) out.push(mat(`${l}.self_attn.${n}.weight`, [H, H]));
    out.push(ones(`${l}.input_layernorm.weight`, H), ones(`${l}.post_attention_layernorm.weight`, H));
    if (i < t.first_k_dense_replace) ffn(`${l}.mlp`, t.intermediate_size);
    else {
      out.push(mat(`${l}.mlp.gate.weight`, [t.n_routed_experts, H]));
      for (let e = 0; e < t.n_routed_experts; e++) ffn(`${l}.mlp.experts.${e}`, t.moe_intermediate_size);
      ffn(`${l}.mlp.shared_experts`, t.moe_intermediate_size * t.n_shared_experts);
    }
  }
  out.push(ones(`${m}.norm.weight`, H), mat('language.lm_head.weight', [t.vocab_size, H]));
  return out;
}

/**
 * Bytes of the routed experts a decode step does not read (all but the top-k of each MoE layer),
 * as the session holds them in the mode: float32, or int8 / int4 with a float32 scale per block.
 */
export function inactiveExpertBytes(mode: QuantMode): number {
  const t = DSVL2_TINY_CONFIG.language_config;
  const moeLayers = t.num_hidden_layers - t.first_k_dense_replace;
  const perWeight = mode === 'none' ? 4 : mode === 'int8' ? 1 + 4 / QUANT_BLOCK_SIZES[8] : 0.5 + 4 / QUANT_BLOCK_SIZES[4];
  return moeLayers * (t.n_routed_experts - t.num_experts_per_tok) * 3 * t.moe_intermediate_size * t.hidden_size * perWeight;
}

const RELEASES: Record<FamilyCheckpointName, FamilyRelease> = {
  'gemma3-4b': {
    what: 'Gemma 3 4B (google/gemma-3-4b-it shapes, BF16, ~8.6 GB, 2 shards)',
    fixture: 'gemma3',
    shards: 2,
    config: GEMMA3_4B_CONFIG,
    generationConfig: { bos_token_id: 2, cache_implementation: 'hybrid', do_sample: true, eos_token_id: [1, 106], pad_token_id: 0, top_k: 64, top_p: f(0.95), transformers_version: '4.50.0.dev0' },
    preprocessorConfig: {
      do_convert_rgb: null,
      do_normalize: true,
      do_pan_and_scan: null,
      do_rescale: true,
      do_resize: true,
      image_mean: [f(0.5), f(0.5), f(0.5)],
      image_processor_type: 'Gemma3ImageProcessor',
      image_seq_length: 256,
      image_std: [f(0.5), f(0.5), f(0.5)],
      pan_and_scan_max_num_crops: null,
      pan_and_scan_min_crop_size: null,
      pan_and_scan_min_ratio_to_activate: null,
      processor_class: 'Gemma3Processor',
      resample: 2,
      rescale_factor: f(0.00392156862745098),
      size: { height: 896, width: 896 },
    },
    processorConfig: { image_seq_length: 256, processor_class: 'Gemma3Processor' },
    specialIds: {
      '<pad>': 0,
      '<eos>': 1,
      '<bos>': 2,
      '<unk>': 3,
      '<mask>': 4,
      '<start_of_turn>': 105,
      '<end_of_turn>': 106,
      '<start_of_image>': 255999,
      '<end_of_image>': 256000,
      '<image_soft_token>': 262144,
    },
    shiftOthers: 1000,
    tensors: gemma3Tensors,
  },
  'mllama-11b': {
    what: 'Llama 3.2 11B Vision (meta-llama/Llama-3.2-11B-Vision-Instruct shapes, BF16, ~21.3 GB, 5 shards)',
    fixture: 'mllama',
    shards: 5,
    config: MLLAMA_11B_CONFIG,
    generationConfig: { bos_token_id: 128000, do_sample: true, eos_token_id: [128001, 128008, 128009], pad_token_id: 128004, temperature: f(0.6), top_p: f(0.9), transformers_version: '4.45.0.dev0' },
    preprocessorConfig: {
      do_convert_rgb: true,
      do_normalize: true,
      do_pad: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [f(0.48145466), f(0.4578275), f(0.40821073)],
      image_processor_type: 'MllamaImageProcessor',
      image_std: [f(0.26862954), f(0.26130258), f(0.27577711)],
      max_image_tiles: 4,
      resample: 2,
      rescale_factor: f(0.00392156862745098),
      size: { height: 560, width: 560 },
    },
    specialIds: {
      '<|begin_of_text|>': 128000,
      '<|end_of_text|>': 128001,
      '<|reserved_special_token_0|>': 128002,
      '<|reserved_special_token_1|>': 128003,
      '<|finetune_right_pad_id|>': 128004,
      '<|reserved_special_token_2|>': 128005,
      '<|start_header_id|>': 128006,
      '<|end_header_id|>': 128007,
      '<|eom_id|>': 128008,
      '<|eot_id|>': 128009,
      '<|python_tag|>': 128010,
      '<|reserved_special_token_3|>': 128011,
      '<|reserved_special_token_4|>': 128012,
      '<|image|>': 128256,
    },
    shiftOthers: 0,
    tensors: mllamaTensors,
  },
  'deepseek-vl2-tiny': {
    what: 'DeepSeek-VL2 tiny (deepseek-ai/deepseek-vl2-tiny shapes, BF16, ~6.7 GB, 2 shards)',
    fixture: 'deepseek_vl2',
    shards: 2,
    config: DSVL2_TINY_CONFIG,
    generationConfig: { bos_token_id: 0, eos_token_id: 1 },
    preprocessorConfig: {},
    processorConfig: {
      add_special_token: false,
      candidate_resolutions: DSVL2_TINY_CONFIG.candidate_resolutions,
      downsample_ratio: 2,
      ignore_id: -100,
      image_mean: [f(0.5), f(0.5), f(0.5)],
      image_std: [f(0.5), f(0.5), f(0.5)],
      image_token: '<image>',
      mask_prompt: false,
      normalize: true,
      pad_token: '<｜▁pad▁｜>',
      patch_size: 14,
      processor_class: 'DeepseekVLV2Processor',
      sft_format: 'deepseek',
    },
    // The fixture's few hundred tokens keep their ids (all below the released vocabulary).
    specialIds: {},
    shiftOthers: 0,
    tensors: deepseekTensors,
  },
};

export function familyCheckpointWhat(name: FamilyCheckpointName): string {
  return RELEASES[name].what;
}

/** What the writer is asked to write (for the marker file: a change rewrites the checkpoint). */
export function familyCheckpointSpec(name: FamilyCheckpointName): Record<string, unknown> {
  const r = RELEASES[name];
  return { family: name, shards: r.shards, seed: 0, config: JSON.parse(JSON.stringify(r.config)), specialIds: r.specialIds };
}

/** Bytes of tensor data the checkpoint holds (nothing is written). */
export function familyCheckpointBytes(name: FamilyCheckpointName): number {
  const r = RELEASES[name];
  return writeTensorFiles('', r.tensors(), { shards: r.shards, weights: false }).totalBytes;
}

/** The fixture's tokenizer.json with the special tokens at the released ids. */
function remapTokenizer(text: string, ids: Record<string, number>, shift: number): string {
  const t = JSON.parse(text);
  const newId = (token: string, id: number) => ids[token] ?? id + shift;
  const vocab: Record<string, number> = {};
  for (const [token, id] of Object.entries(t.model.vocab as Record<string, number>)) vocab[token] = newId(token, id);
  t.model.vocab = vocab;
  for (const a of t.added_tokens as Array<{ id: number; content: string }>) a.id = newId(a.content, a.id);
  const remapPost = (p: any) => {
    if (!p) return;
    if (p.type === 'Sequence') p.processors.forEach(remapPost);
    for (const s of Object.values((p.special_tokens ?? {}) as Record<string, { ids: number[]; tokens: string[] }>)) s.ids = s.tokens.map((tok, k) => newId(tok, s.ids[k]!));
  };
  remapPost(t.post_processor);
  const taken = new Map<number, string>();
  for (const [token, id] of [...Object.entries(vocab), ...(t.added_tokens as Array<{ id: number; content: string }>).map((a) => [a.content, a.id] as const)]) {
    if (taken.has(id) && taken.get(id) !== token) throw new Error(`tokenizer remap: id ${id} is both ${taken.get(id)} and ${token}`);
    taken.set(id, token);
  }
  return JSON.stringify(t);
}

function remapTokenizerConfig(text: string, ids: Record<string, number>, shift: number): string {
  const c = JSON.parse(text);
  const decoder: Record<string, { content: string }> = c.added_tokens_decoder ?? {};
  c.added_tokens_decoder = Object.fromEntries(Object.entries(decoder).map(([id, tok]) => [String(ids[tok.content] ?? Number(id) + shift), tok]));
  return JSON.stringify(c, null, 2);
}

/** Writes the whole checkpoint into `dir` (weights last). */
export function writeFamilyCheckpoint(dir: string, name: FamilyCheckpointName, onProgress?: (done: number, total: number) => void): { files: string[]; totalBytes: number } {
  const r = RELEASES[name];
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), pythonJson(r.config) + '\n');
  writeFileSync(join(dir, 'generation_config.json'), pythonJson(r.generationConfig) + '\n');
  writeFileSync(join(dir, 'preprocessor_config.json'), pythonJson(r.preprocessorConfig) + '\n');
  if (r.processorConfig) writeFileSync(join(dir, 'processor_config.json'), pythonJson(r.processorConfig) + '\n');
  const from = goldenModelDir(r.fixture);
  writeFileSync(join(dir, 'tokenizer.json'), remapTokenizer(readFileSync(join(from, 'tokenizer.json'), 'utf8'), r.specialIds, r.shiftOthers));
  writeFileSync(join(dir, 'tokenizer_config.json'), remapTokenizerConfig(readFileSync(join(from, 'tokenizer_config.json'), 'utf8'), r.specialIds, r.shiftOthers));
  // Files without ids; vocab.json / merges.txt hold the (unshifted) BPE tokens of the Llama fixture.
  for (const file of ['chat_template.json', 'special_tokens_map.json', ...(r.shiftOthers ? [] : ['vocab.json', 'merges.txt'])]) {
    if (existsSync(join(from, file))) copyFileSync(join(from, file), join(dir, file));
  }
  const written = writeTensorFiles(dir, r.tensors(), { shards: r.shards, seed: 0, onProgress });
  return { files: written.files, totalBytes: written.totalBytes };
}
