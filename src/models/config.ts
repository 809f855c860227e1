import { existsSync, readFileSync } from 'node:fs';
import { ModelLoadError } from '../errors.js';

/** The text decoder's hyper-parameters (Qwen2 family naming; families map their config.json onto these). */
export interface TextConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** M-RoPE only: frequencies per axis (t, h, w), summing to headDim / 2; absent for 1-D RoPE. */
  mropeSection?: [number, number, number];
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** RoPE frequency scaling of the (global) layers, as config.json's rope_scaling. */
  ropeScaling?: RopeScaling;
  /** Per layer, the sliding window in tokens (the token itself and the window - 1 before it), or null for full attention. */
  layerWindows?: Array<number | null>;
  /** RoPE base of the sliding-window layers when it differs (Gemma 3's rope_local_base_freq; unscaled). */
  localRopeTheta?: number;
  /** Gemma: token embeddings times sqrt(hidden), RMSNorm weights as (1 + w), q/k RMSNorm per head, norms after attention and around the MLP. */
  gemmaNorms?: boolean;
  /** The MLP's activation (default silu). */
  hiddenAct?: 'silu' | 'gelu_pytorch_tanh';
  /** Attention scale (default 1 / sqrt(headDim)). */
  attnScale?: number;
  /** Rows of the embedding table when it has more than the output (Mllama's extra image and padding rows). */
  embedRows?: number;
  /** Layers that attend to the images' states instead of the past (Llama 3.2 Vision's gated cross-attention). */
  crossAttentionLayers?: number[];
  /** Mixture-of-experts MLPs (DeepSeek-V2): which layers, the experts and how tokens are routed. */
  moe?: MoeConfig;
  /** Multi-head latent attention (DeepSeek-V2) in every layer; the KV cache holds the latent and the rotated rope key. */
  mla?: MlaConfig;
}

/** DeepseekV2's MLA sizes. */
export interface MlaConfig {
  /** Rank of the query's low-rank projection, or null for a plain q_proj. */
  qLoraRank: number | null;
  kvLoraRank: number;
  ropeDim: number;
  nopeDim: number;
  vDim: number;
}

/** DeepseekV2's MoE: routed experts (top-k of a gate), optional shared experts. */
export interface MoeConfig {
  /** Layers before this one keep the dense MLP; then every `layerFreq`-th layer is MoE. */
  firstDense: number;
  layerFreq: number;
  experts: number;
  topK: number;
  /** Width of one expert (and, times `shared`, of the shared experts). */
  intermediateSize: number;
  shared: number;
  scoring: 'softmax' | 'sigmoid';
  /** Renormalise the chosen experts' weights to sum to 1 (before the scaling factor). */
  normTopK: boolean;
  scalingFactor: number;
  /** `greedy`: the top-k scores; `noaux_tc`: chosen on scores plus a correction bias, within the best groups (by the sum of their top two). */
  method: 'greedy' | 'noaux_tc';
  groups: number;
  topKGroups: number;
}

/** config.json's rope_scaling for 1-D RoPE: linear position interpolation, or Llama 3.1's frequency bands. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'yarn'; factor: number; originalMaxPositions: number; betaFast: number; betaSlow: number; mscale: number; mscaleAllDim: number };

/** Parses rope_scaling (null for none or M-RoPE's section-only entry); other types are refused. */
export function parseRopeScaling(rs: Json | null | undefined, where: string): RopeScaling | undefined {
  if (!rs) return undefined;
  const type = rs.rope_type ?? rs.type;
  if (type === 'linear') return { type, factor: num(rs, 'factor', where) };
  if (type === 'llama3') {
    return {
      type,
      factor: num(rs, 'factor', where),
      lowFreqFactor: num(rs, 'low_freq_factor', where),
      highFreqFactor: num(rs, 'high_freq_factor', where),
      originalMaxPositions: num(rs, 'original_max_position_embeddings', where),
    };
  }
  if (type === 'yarn') {
    return {
      type,
      factor: num(rs, 'factor', where),
      originalMaxPositions: num(rs, 'original_max_position_embeddings', where),
      betaFast: num(rs, 'beta_fast', where, 32),
      betaSlow: num(rs, 'beta_slow', where, 1),
      mscale: num(rs, 'mscale', where, 1),
      mscaleAllDim: num(rs, 'mscale_all_dim', where, 0),
    };
  }
  if (type === 'default' || type === undefined) return undefined;
  throw new ModelLoadError(`config.json: ${where}rope_type "${type}" is not supported (linear, llama3 and yarn are)`);
}

/** What every family's config gives the engine; a family's own config extends it. */
export interface ModelConfig {
  architecture: string;
  modelType: string;
  text: TextConfig;
  /** The token an image's placeholder expands into (one per embedding row). */
  imageTokenId: number;
  /** The tokens that stand for one image in a raw prompt that has no placeholders. */
  rawImageTokens: number[];
  eosTokenIds: number[];
  raw: Record<string, unknown>;
}

export type Json = Record<string, any>;

/** A family's own config from the engine's generic one, told apart by a field only that family has. */
export function familyConfig<T extends ModelConfig>(c: ModelConfig, field: Exclude<keyof T, keyof ModelConfig> & string, family: string): T {
  if (!(field in c)) throw new ModelLoadError(`${c.architecture} is not a ${family} model`);
  return c as T;
}

export function num(obj: Json, key: string, where: string, fallback?: number): number {
  const v = obj[key];
  if (typeof v === 'number') return v;
  if (fallback !== undefined) return fallback;
  throw new ModelLoadError(`config.json: ${where}${key} is missing or not a number`);
}

export function readJson(path: string, what: string): Json {
  if (!existsSync(path)) throw new ModelLoadError(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}
