/**
 * Writes Hugging Face-layout Qwen2-VL / Qwen2.5-VL checkpoints with random weights
 * from a fixed seed: config.json in the released layout of the architecture,
 * generation_config.json, preprocessor_config.json, the tokenizer files of the
 * golden fixture of the same family, and one model.safetensors or n shards with
 * model.safetensors.index.json.
 *
 * Weights are streamed to disk chunk by chunk (a multi-GB checkpoint never sits
 * in memory). Each tensor's values depend only on (seed, tensor name, index), so
 * the same checkpoint written in another dtype or another number of shards holds
 * the same numbers (rounded to the dtype).
 *
 * CLI: node dist/tools/checkpoint.js --arch qwen2_vl --preset 2b --dtype BF16 --out DIR
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { F16_TABLE } from '../src/runtime/safetensors.js';

export type Arch = 'qwen2_5_vl' | 'qwen2_vl';
export type CheckpointDtype = 'F32' | 'BF16' | 'F16';
/** Dtypes a tensor may be written in (I32 only to test that loaders refuse it). */
export type TensorDtype = CheckpointDtype | 'I32';

export interface TextSizes {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  ropeTheta: number;
  /** Sums to head_dim / 2; default splits like the released [16, 24, 24]. */
  mropeSection: [number, number, number];
  maxPositionEmbeddings: number;
  rmsNormEps: number;
}

export interface VisionSizes {
  depth: number;
  /** Vision width: `embed_dim` in Qwen2-VL, `hidden_size` in Qwen2.5-VL. */
  width: number;
  numHeads: number;
  /** Qwen2-VL: MLP width = width * mlpRatio. */
  mlpRatio: number;
  /** Qwen2.5-VL: the gated MLP's width. */
  intermediateSize: number;
  /** Qwen2.5-VL: window side in pixels. */
  windowSize: number;
  /** Qwen2.5-VL: blocks with full attention. */
  fullAttBlockIndexes: number[];
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
}

/** How a tensor is filled: N(0, std) for matrices and biases, 1 + N(0, std) for norm weights. */
export interface TensorInit {
  kind: 'normal' | 'ones_noise';
  std: number;
}

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  init: TensorInit;
  /** Draw the values from another tensor's stream (test hook: e.g. an lm_head equal to the embedding). */
  valuesFrom?: string;
}

export interface CheckpointOptions {
  arch: Arch;
  /** Default F32. */
  dtype?: CheckpointDtype;
  /** Default 1 (model.safetensors); more writes model-0000k-of-0000n.safetensors and an index. */
  shards?: number;
  /** Default 0. */
  seed?: number;
  /** Default: the preset's (false for tiny and 7B, true for the 2B / 3B presets). */
  tieWordEmbeddings?: boolean;
  /** Starting sizes; default 'tiny'. */
  preset?: string;
  text?: Partial<TextSizes>;
  vision?: Partial<VisionSizes>;
  /** Round every value to this precision before writing (e.g. an F32 file holding BF16-exact values). */
  roundTo?: 'BF16' | 'F16';
  /** Default 0.02 (the released initializer_range). */
  initializerRange?: number;
  /** Noise on norm weights (1 + N(0, normNoise)); default 0.02. */
  normNoise?: number;
  /** preprocessor_config.json pixel budget; default the released 3136 .. 12845056. */
  minPixels?: number;
  maxPixels?: number;
  /** Folder to copy the tokenizer files from; default the golden fixture of the family. */
  tokenizerFrom?: string;
  /** Default true; false writes only the JSON and tokenizer files (the returned info still lists the tensors). */
  weights?: boolean;
  /** Test hook: change a tensor's name/shape/dtype before writing, or return null to leave it out. */
  mapTensor?: (t: TensorSpec) => TensorSpec | null;
  /** Test hook: edit config.json before it is written (float fields hold PyFloat; plain numbers are fine). */
  patchConfig?: (config: Record<string, any>) => void;
  onProgress?: (bytesWritten: number, totalBytes: number) => void;
}

export interface CheckpointInfo {
  dir: string;
  config: Record<string, any>;
  /** Weight files written, relative to dir. */
  files: string[];
  tensors: Array<TensorSpec & { file: string; bytes: number }>;
  /** Bytes of tensor data (the index's metadata.total_size). */
  totalBytes: number;
}

/** A number Python's json module writes as a float (0.0, 1e-06, 1000000.0). */
export class PyFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
}

function pyFloatText(v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : v < 0 ? '-Infinity' : 'NaN';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) {
    // Python repr: shortest digits, exponent with a sign and at least two digits.
    const [m, e] = v.toExponential().split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[+-]/, '').padStart(2, '0');
    return `${m}e${sign}${digits}`;
  }
  const s = String(v);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}

/** JSON as transformers writes it (json.dumps(indent=2)): floats keep their decimal point. */
export function pythonJson(value: unknown, indent = 2, level = 0): string {
  const pad = ' '.repeat(indent * (level + 1));
  const end = ' '.repeat(indent * level);
  if (value instanceof PyFloat) return pyFloatText(value.value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((x) => pad + pythonJson(x, indent, level + 1)).join(',\n')}\n${end}]`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, x]) => `${pad}${JSON.stringify(k)}: ${pythonJson(x, indent, level + 1)}`).join(',\n')}\n${end}}`;
  }
  return JSON.stringify(value);
}

const f = (v: number) => new PyFloat(v);

const DTYPE_SIZE: Record<TensorDtype, number> = { F32: 4, BF16: 2, F16: 2, I32: 4 };

/** Token ids of the golden tokenizer (Qwen2-VL's special tokens, renumbered to 287-299). */
const TOKENS = {
  bos: 287,
  eos: 289,
  visionStart: 290,
  visionEnd: 291,
  visionPad: 292,
  image: 293,
  video: 294,
};

interface Preset {
  text: Omit<TextSizes, 'mropeSection'> & { mropeSection?: [number, number, number] };
  vision: VisionSizes;
  tie: boolean;
}

const TINY_TEXT = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 128,
  vocabSize: 300,
  ropeTheta: 1000000,
  maxPositionEmbeddings: 4096,
  rmsNormEps: 1e-6,
};

export const PRESETS: Record<Arch, Record<string, Preset>> = {
  qwen2_vl: {
    tiny: {
      text: TINY_TEXT,
      vision: { depth: 2, width: 32, numHeads: 2, mlpRatio: 2, intermediateSize: 0, windowSize: 0, fullAttBlockIndexes: [], patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2 },
      tie: false,
    },
    // Qwen2-VL-2B-Instruct.
    '2b': {
      text: { hiddenSize: 1536, numLayers: 28, numHeads: 12, numKvHeads: 2, intermediateSize: 8960, vocabSize: 151936, ropeTheta: 1000000, mropeSection: [16, 24, 24], maxPositionEmbeddings: 32768, rmsNormEps: 1e-6 },
      vision: { depth: 32, width: 1280, numHeads: 16, mlpRatio: 4, intermediateSize: 0, windowSize: 0, fullAttBlockIndexes: [], patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2 },
      tie: true,
    },
  },
  qwen2_5_vl: {
    tiny: {
      text: TINY_TEXT,
      vision: { depth: 2, width: 32, numHeads: 2, mlpRatio: 0, intermediateSize: 64, windowSize: 112, fullAttBlockIndexes: [1], patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2 },
      tie: false,
    },
    // Qwen2.5-VL-3B-Instruct.
    '3b': {
      text: { hiddenSize: 2048, numLayers: 36, numHeads: 16, numKvHeads: 2, intermediateSize: 11008, vocabSize: 151936, ropeTheta: 1000000, mropeSection: [16, 24, 24], maxPositionEmbeddings: 128000, rmsNormEps: 1e-6 },
      vision: { depth: 32, width: 1280, numHeads: 16, mlpRatio: 0, intermediateSize: 3420, windowSize: 112, fullAttBlockIndexes: [7, 15, 23, 31], patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2 },
      tie: true,
    },
    // Qwen2.5-VL-7B-Instruct (separate lm_head).
    '7b': {
      text: { hiddenSize: 3584, numLayers: 28, numHeads: 28, numKvHeads: 4, intermediateSize: 18944, vocabSize: 152064, ropeTheta: 1000000, mropeSection: [16, 24, 24], maxPositionEmbeddings: 128000, rmsNormEps: 1e-6 },
      vision: { depth: 32, width: 1280, numHeads: 16, mlpRatio: 0, intermediateSize: 3420, windowSize: 112, fullAttBlockIndexes: [7, 15, 23, 31], patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2 },
      tie: false,
    },
  },
};

/** Splits head_dim/2 frequencies over (t, h, w) as the released configs do ([16, 24, 24] for 64). */
export function defaultMropeSection(headDim: number): [number, number, number] {
  const half = headDim / 2;
  const t = Math.floor(half / 4);
  const h = Math.ceil((half - t) / 2);
  return [t, h, half - t - h];
}

interface Resolved {
  arch: Arch;
  text: TextSizes;
  vision: VisionSizes;
  tie: boolean;
}

function resolveSizes(opts: CheckpointOptions): Resolved {
  const presetName = opts.preset ?? 'tiny';
  const preset = PRESETS[opts.arch]?.[presetName];
  if (!preset) throw new Error(`unknown preset "${presetName}" for ${opts.arch}; known: ${Object.keys(PRESETS[opts.arch] ?? {}).join(', ')}`);
  const t0 = { ...preset.text, ...opts.text };
  const headDim = t0.hiddenSize / t0.numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`text hidden size ${t0.hiddenSize} is not a multiple of 2 * ${t0.numHeads} heads`);
  if (t0.numHeads % t0.numKvHeads !== 0) throw new Error(`${t0.numHeads} heads are not a multiple of ${t0.numKvHeads} KV heads`);
  const keepSection = opts.text?.mropeSection ?? (opts.text?.hiddenSize || opts.text?.numHeads ? undefined : preset.text.mropeSection);
  const text: TextSizes = { ...t0, mropeSection: keepSection ?? defaultMropeSection(headDim) };
  const vision: VisionSizes = { ...preset.vision, ...opts.vision };
  if (vision.width % vision.numHeads !== 0 || (vision.width / vision.numHeads) % 4 !== 0) {
    throw new Error(`vision width ${vision.width} / ${vision.numHeads} heads must be a multiple of 4`);
  }
  return { arch: opts.arch, text, vision, tie: opts.tieWordEmbeddings ?? preset.tie };
}

/** config.json exactly in the layout of the released checkpoints of each architecture. */
function buildConfig(r: Resolved, dtype: CheckpointDtype, initializerRange: number): Record<string, any> {
  const { text: t, vision: v } = r;
  const torchDtype = dtype === 'F32' ? 'float32' : dtype === 'BF16' ? 'bfloat16' : 'float16';
  const ropeScaling = { type: 'mrope', mrope_section: t.mropeSection };
  if (r.arch === 'qwen2_vl') {
    return {
      architectures: ['Qwen2VLForConditionalGeneration'],
      attention_dropout: f(0.0),
      bos_token_id: TOKENS.bos,
      eos_token_id: TOKENS.eos,
      vision_start_token_id: TOKENS.visionStart,
      vision_end_token_id: TOKENS.visionEnd,
      vision_token_id: TOKENS.visionPad,
      image_token_id: TOKENS.image,
      video_token_id: TOKENS.video,
      hidden_act: 'silu',
      hidden_size: t.hiddenSize,
      initializer_range: f(initializerRange),
      intermediate_size: t.intermediateSize,
      max_position_embeddings: t.maxPositionEmbeddings,
      max_window_layers: t.numLayers,
      model_type: 'qwen2_vl',
      num_attention_heads: t.numHeads,
      num_hidden_layers: t.numLayers,
      num_key_value_heads: t.numKvHeads,
      rms_norm_eps: f(t.rmsNormEps),
      rope_theta: f(t.ropeTheta),
      sliding_window: t.maxPositionEmbeddings,
      tie_word_embeddings: r.tie,
      torch_dtype: torchDtype,
      transformers_version: '4.41.2',
      use_cache: true,
      use_sliding_window: false,
      // Qwen2-VL naming: embed_dim is the vision width, hidden_size the merger output (= text width).
      vision_config: {
        depth: v.depth,
        embed_dim: v.width,
        mlp_ratio: v.mlpRatio,
        num_heads: v.numHeads,
        in_chans: 3,
        hidden_size: t.hiddenSize,
        patch_size: v.patchSize,
        spatial_merge_size: v.spatialMergeSize,
        temporal_patch_size: v.temporalPatchSize,
      },
      rope_scaling: ropeScaling,
      vocab_size: t.vocabSize,
    };
  }
  return {
    architectures: ['Qwen2_5_VLForConditionalGeneration'],
    attention_dropout: f(0.0),
    bos_token_id: TOKENS.bos,
    eos_token_id: TOKENS.eos,
    vision_start_token_id: TOKENS.visionStart,
    vision_end_token_id: TOKENS.visionEnd,
    vision_token_id: TOKENS.visionPad,
    image_token_id: TOKENS.image,
    video_token_id: TOKENS.video,
    hidden_act: 'silu',
    hidden_size: t.hiddenSize,
    initializer_range: f(initializerRange),
    intermediate_size: t.intermediateSize,
    max_position_embeddings: t.maxPositionEmbeddings,
    max_window_layers: t.numLayers,
    model_type: 'qwen2_5_vl',
    num_attention_heads: t.numHeads,
    num_hidden_layers: t.numLayers,
    num_key_value_heads: t.numKvHeads,
    rms_norm_eps: f(t.rmsNormEps),
    rope_theta: f(t.ropeTheta),
    sliding_window: 32768,
    tie_word_embeddings: r.tie,
    torch_dtype: torchDtype,
    transformers_version: '4.41.2',
    use_cache: true,
    use_sliding_window: false,
    vision_config: {
      depth: v.depth,
      hidden_act: 'silu',
      hidden_size: v.width,
      intermediate_size: v.intermediateSize,
      num_heads: v.numHeads,
      in_chans: 3,
      out_hidden_size: t.hiddenSize,
      patch_size: v.patchSize,
      spatial_merge_size: v.spatialMergeSize,
      spatial_patch_size: v.patchSize,
      window_size: v.windowSize,
      fullatt_block_indexes: v.fullAttBlockIndexes,
      tokens_per_second: 2,
      temporal_patch_size: v.temporalPatchSize,
    },
    rope_scaling: ropeScaling,
    vocab_size: t.vocabSize,
  };
}

/**
 * The checkpoint's tensors in the order the model modules define them (the order
 * shards are filled in): vision tower, then decoder layers, then final norm and lm_head.
 */
function tensorSpecs(r: Resolved, dtype: CheckpointDtype, std: number, normNoise: number): TensorSpec[] {
  const out: TensorSpec[] = [];
  const mat = (name: string, shape: number[]) => out.push({ name, shape, dtype, init: { kind: 'normal', std } });
  const bias = mat;
  const norm = (name: string, dim: number) => out.push({ name, shape: [dim], dtype, init: { kind: 'ones_noise', std: normNoise } });
  const { text: t, vision: v } = r;
  const C = v.width;
  const is25 = r.arch === 'qwen2_5_vl';
  mat('visual.patch_embed.proj.weight', [C, 3, v.temporalPatchSize, v.patchSize, v.patchSize]);
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}`;
    norm(`${p}.norm1.weight`, C);
    if (!is25) bias(`${p}.norm1.bias`, [C]);
    norm(`${p}.norm2.weight`, C);
    if (!is25) bias(`${p}.norm2.bias`, [C]);
    mat(`${p}.attn.qkv.weight`, [3 * C, C]);
    bias(`${p}.attn.qkv.bias`, [3 * C]);
    mat(`${p}.attn.proj.weight`, [C, C]);
    bias(`${p}.attn.proj.bias`, [C]);
    if (is25) {
      const I = v.intermediateSize;
      mat(`${p}.mlp.gate_proj.weight`, [I, C]);
      bias(`${p}.mlp.gate_proj.bias`, [I]);
      mat(`${p}.mlp.up_proj.weight`, [I, C]);
      bias(`${p}.mlp.up_proj.bias`, [I]);
      mat(`${p}.mlp.down_proj.weight`, [C, I]);
      bias(`${p}.mlp.down_proj.bias`, [C]);
    } else {
      const I = C * v.mlpRatio;
      mat(`${p}.mlp.fc1.weight`, [I, C]);
      bias(`${p}.mlp.fc1.bias`, [I]);
      mat(`${p}.mlp.fc2.weight`, [C, I]);
      bias(`${p}.mlp.fc2.bias`, [C]);
    }
  }
  const U = C * v.spatialMergeSize * v.spatialMergeSize;
  norm('visual.merger.ln_q.weight', C);
  if (!is25) bias('visual.merger.ln_q.bias', [C]);
  mat('visual.merger.mlp.0.weight', [U, U]);
  bias('visual.merger.mlp.0.bias', [U]);
  mat('visual.merger.mlp.2.weight', [t.hiddenSize, U]);
  bias('visual.merger.mlp.2.bias', [t.hiddenSize]);

  const H = t.hiddenSize;
  const D = H / t.numHeads;
  const KV = t.numKvHeads * D;
  mat('model.embed_tokens.weight', [t.vocabSize, H]);
  for (let i = 0; i < t.numLayers; i++) {
    const p = `model.layers.${i}`;
    mat(`${p}.self_attn.q_proj.weight`, [H, H]);
    bias(`${p}.self_attn.q_proj.bias`, [H]);
    mat(`${p}.self_attn.k_proj.weight`, [KV, H]);
    bias(`${p}.self_attn.k_proj.bias`, [KV]);
    mat(`${p}.self_attn.v_proj.weight`, [KV, H]);
    bias(`${p}.self_attn.v_proj.bias`, [KV]);
    mat(`${p}.self_attn.o_proj.weight`, [H, H]);
    mat(`${p}.mlp.gate_proj.weight`, [t.intermediateSize, H]);
    mat(`${p}.mlp.up_proj.weight`, [t.intermediateSize, H]);
    mat(`${p}.mlp.down_proj.weight`, [H, t.intermediateSize]);
    norm(`${p}.input_layernorm.weight`, H);
    norm(`${p}.post_attention_layernorm.weight`, H);
  }
  norm('model.norm.weight', H);
  if (!r.tie) mat('lm_head.weight', [t.vocabSize, H]);
  return out;
}

// ---- deterministic values ---------------------------------------------------

/** FNV-1a of the seed and the tensor name: each tensor's own stream. */
function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * sfc32 generator; each value is the sum of four 16-bit uniforms (Irwin-Hall,
 * 65536 levels per term), standardised: close to N(0, 1), cheap enough to fill
 * gigabytes (~80M values/s).
 */
class ValueStream {
  private a: number;
  private b = 0x9e3779b9 | 0;
  private c = 0x243f6a88 | 0;
  private d = 1;

  constructor(seed: number) {
    this.a = seed | 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  private next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Fills `out` with offset + scale * (approximately standard normal values). */
  fill(out: Float32Array, n: number, offset: number, scale: number): void {
    let { a, b, c, d } = this;
    const k = scale / 37837.23; // std of the sum of four uniform 16-bit integers
    for (let i = 0; i < n; i++) {
      let t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0; a = b ^ (b >>> 9); b = (c + (c << 3)) | 0; c = (c << 21) | (c >>> 11); c = (c + t) | 0;
      const r1 = t >>> 0;
      t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0; a = b ^ (b >>> 9); b = (c + (c << 3)) | 0; c = (c << 21) | (c >>> 11); c = (c + t) | 0;
      const r2 = t >>> 0;
      const s = (r1 & 0xffff) + (r1 >>> 16) + (r2 & 0xffff) + (r2 >>> 16) - 131070;
      out[i] = offset + s * k;
    }
    this.a = a; this.b = b; this.c = c; this.d = d;
  }

  /** Small random integers (for I32 test tensors). */
  fillInt(out: Int32Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = (this.next() % 201) - 100;
  }
}

// ---- float conversions (round to nearest even) --------------------------------

/** float32 bits -> bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 bits -> IEEE half bits, round to nearest even (numpy's npy_floatbits_to_halfbits). */
export function f32BitsToF16(f: number): number {
  f >>>= 0;
  const sign = (f & 0x80000000) >>> 16;
  const fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) {
    if (fExp === 0x7f800000 && (f & 0x7fffff) !== 0) {
      let ret = 0x7c00 + ((f & 0x7fffff) >>> 13);
      if (ret === 0x7c00) ret++;
      return sign + ret;
    }
    return sign + 0x7c00;
  }
  if (fExp <= 0x38000000) {
    if (fExp < 0x33000000) return sign;
    const e = fExp >>> 23;
    let sig = 0x800000 + (f & 0x7fffff);
    sig >>>= 113 - e;
    if ((sig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) sig += 0x1000;
    return sign + (sig >>> 13);
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  let sig = f & 0x7fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  return sign + ((sig >>> 13) + hExp);
}


/** Rounds float32 values in place to the nearest bfloat16 / float16 value. */
export function roundInPlace(values: Float32Array, to: 'BF16' | 'F16', n = values.length): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (to === 'BF16') for (let i = 0; i < n; i++) bits[i] = f32BitsToBf16(bits[i]!) << 16;
  else for (let i = 0; i < n; i++) values[i] = F16_TABLE[f32BitsToF16(bits[i]!)]!;
}

// ---- safetensors writing --------------------------------------------------------

const CHUNK = 1 << 20; // values per generated chunk

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** The header as safetensors writes it: __metadata__ first, keys sorted, padded with spaces to 8 bytes. */
function safetensorsHeader(tensors: TensorSpec[]): { header: Buffer; order: TensorSpec[] } {
  const order = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of order) {
    const bytes = numel(t.shape) * DTYPE_SIZE[t.dtype];
    json[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let text = JSON.stringify(json);
  const pad = (8 - ((Buffer.byteLength(text) + 8) % 8)) % 8;
  text += ' '.repeat(pad);
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(8 + body.length);
  header.writeBigUInt64LE(BigInt(body.length), 0);
  body.copy(header, 8);
  return { header, order };
}

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

class TensorWriter {
  private readonly values = new Float32Array(CHUNK);
  private readonly bits = new Uint32Array(this.values.buffer);
  private readonly ints = new Int32Array(CHUNK);
  private readonly half = new Uint16Array(CHUNK);
  written = 0;

  constructor(
    private readonly seed: number,
    private readonly roundTo: 'BF16' | 'F16' | undefined,
    private readonly progress: ((done: number) => void) | undefined,
  ) {}

  write(fd: number, t: TensorSpec): void {
    const stream = new ValueStream(tensorSeed(this.seed, t.valuesFrom ?? t.name));
    const total = numel(t.shape);
    for (let done = 0; done < total; done += CHUNK) {
      const n = Math.min(CHUNK, total - done);
      let out: Uint8Array;
      if (t.dtype === 'I32') {
        stream.fillInt(this.ints, n);
        out = new Uint8Array(this.ints.buffer, 0, n * 4);
      } else {
        stream.fill(this.values, n, t.init.kind === 'ones_noise' ? 1 : 0, t.init.std);
        if (this.roundTo) roundInPlace(this.values, this.roundTo, n);
        if (t.dtype === 'F32') out = new Uint8Array(this.values.buffer, 0, n * 4);
        else {
          const conv = t.dtype === 'BF16' ? f32BitsToBf16 : f32BitsToF16;
          for (let i = 0; i < n; i++) this.half[i] = conv(this.bits[i]!);
          out = new Uint8Array(this.half.buffer, 0, n * 2);
        }
      }
      writeAll(fd, out);
      this.written += out.length;
      this.progress?.(this.written);
    }
  }
}

/** Splits tensors (in module order) into n shards of about equal bytes; a split may fall inside a layer. */
function splitShards(tensors: TensorSpec[], n: number): TensorSpec[][] {
  const bytes = tensors.map((t) => numel(t.shape) * DTYPE_SIZE[t.dtype]);
  const total = bytes.reduce((a, b) => a + b, 0);
  const shards: TensorSpec[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  let s = 0;
  tensors.forEach((t, i) => {
    // Move on once this shard has its share, keeping enough tensors for the shards left.
    const remainingTensors = tensors.length - i;
    const remainingShards = n - s;
    if (s < n - 1 && shards[s]!.length > 0 && (acc >= (total * (s + 1)) / n || remainingTensors <= remainingShards - 1)) s++;
    shards[s]!.push(t);
    acc += bytes[i]!;
  });
  if (shards.some((x) => x.length === 0)) throw new Error(`cannot split ${tensors.length} tensors into ${n} shards`);
  return shards;
}

/** The golden fixture folder of a family (test/fixtures/golden/<family>/model; tokenizer files are copied from it). */
export function goldenModelDir(arch: string): string {
  // dist/tools/checkpoint.js or tools/checkpoint.ts -> project root
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['..', join('..', '..')]) {
    const dir = resolve(here, up, 'test', 'fixtures', 'golden', arch, 'model');
    if (existsSync(join(dir, 'tokenizer.json'))) return dir;
  }
  throw new Error(`cannot find the golden ${arch} model folder from ${here}`);
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'vocab.json', 'merges.txt'];

/** Bytes of tensor data a checkpoint with these options holds (nothing is written). */
export function checkpointTensorBytes(opts: CheckpointOptions): number {
  let specs = tensorSpecs(resolveSizes(opts), opts.dtype ?? 'F32', opts.initializerRange ?? 0.02, opts.normNoise ?? 0.02);
  if (opts.mapTensor) specs = specs.map(opts.mapTensor).filter((t): t is TensorSpec => t !== null);
  return specs.reduce((a, t) => a + numel(t.shape) * DTYPE_SIZE[t.dtype], 0);
}

/** Writes a random-weight checkpoint into `dir` (created if needed; existing files are overwritten). */
export function writeCheckpoint(dir: string, opts: CheckpointOptions): CheckpointInfo {
  const dtype = opts.dtype ?? 'F32';
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be a positive integer, got ${shards}`);
  const seed = opts.seed ?? 0;
  const std = opts.initializerRange ?? 0.02;
  const r = resolveSizes(opts);
  mkdirSync(dir, { recursive: true });

  const config = buildConfig(r, dtype, std);
  opts.patchConfig?.(config);
  writeFileSync(join(dir, 'config.json'), pythonJson(config) + '\n');
  writeFileSync(
    join(dir, 'generation_config.json'),
    pythonJson({ bos_token_id: TOKENS.bos, pad_token_id: TOKENS.bos, do_sample: false, eos_token_id: [TOKENS.eos, TOKENS.bos], transformers_version: '4.41.2' }) + '\n',
  );
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    pythonJson(
      {
        min_pixels: opts.minPixels ?? 3136,
        max_pixels: opts.maxPixels ?? 12845056,
        patch_size: r.vision.patchSize,
        temporal_patch_size: r.vision.temporalPatchSize,
        merge_size: r.vision.spatialMergeSize,
        image_mean: [0.48145466, 0.4578275, 0.40821073].map(f),
        image_std: [0.26862954, 0.26130258, 0.27577711].map(f),
        image_processor_type: 'Qwen2VLImageProcessor',
        processor_class: r.arch === 'qwen2_vl' ? 'Qwen2VLProcessor' : 'Qwen2_5_VLProcessor',
      },
    ) + '\n',
  );
  const from = opts.tokenizerFrom ?? goldenModelDir(r.arch);
  for (const f of TOKENIZER_FILES) if (existsSync(join(from, f))) copyFileSync(join(from, f), join(dir, f));

  let specs = tensorSpecs(r, dtype, std, opts.normNoise ?? 0.02);
  if (opts.mapTensor) specs = specs.map(opts.mapTensor).filter((t): t is TensorSpec => t !== null);
  const written = writeTensorFiles(dir, specs, { shards, seed, roundTo: opts.roundTo, weights: opts.weights, onProgress: opts.onProgress });
  return { dir, config: JSON.parse(JSON.stringify(config)), ...written };
}

/**
 * Writes `specs` (in module order) as model.safetensors, or as n shards of about equal bytes
 * with model.safetensors.index.json, filling each tensor with its own deterministic stream of
 * (seed, name). Weight files of an earlier checkpoint in `dir` are removed first. With
 * `weights: false` only the layout is computed.
 */
export function writeTensorFiles(
  dir: string,
  specs: TensorSpec[],
  opts: { shards?: number; seed?: number; roundTo?: 'BF16' | 'F16'; weights?: boolean; onProgress?: (bytesWritten: number, totalBytes: number) => void } = {},
): Pick<CheckpointInfo, 'files' | 'tensors' | 'totalBytes'> {
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be a positive integer, got ${shards}`);
  const totalBytes = specs.reduce((a, t) => a + numel(t.shape) * DTYPE_SIZE[t.dtype], 0);
  const groups = shards === 1 ? [specs] : splitShards(specs, shards);
  const pad = (k: number) => String(k).padStart(5, '0');
  const files = groups.map((_, k) => (shards === 1 ? 'model.safetensors' : `model-${pad(k + 1)}-of-${pad(shards)}.safetensors`));
  const tensors: CheckpointInfo['tensors'] = [];
  const weightMap: Record<string, string> = {};
  const orders = groups.map((group) => safetensorsHeader(group));
  orders.forEach(({ order }, k) => {
    for (const t of order) {
      tensors.push({ ...t, file: files[k]!, bytes: numel(t.shape) * DTYPE_SIZE[t.dtype] });
      weightMap[t.name] = files[k]!;
    }
  });
  const result = { files, tensors, totalBytes };
  if (opts.weights === false) return result;

  mkdirSync(dir, { recursive: true });
  // Weights of an earlier checkpoint in this folder would shadow or mix with the new ones.
  for (const f of readdirSync(dir)) {
    if (f === 'model.safetensors' || f === 'model.safetensors.index.json' || /^model-\d+-of-\d+\.safetensors$/.test(f)) rmSync(join(dir, f));
  }
  const onProgress = opts.onProgress;
  const writer = new TensorWriter(opts.seed ?? 0, opts.roundTo, onProgress ? (done) => onProgress(done, totalBytes) : undefined);
  orders.forEach(({ header, order }, k) => {
    const fd = openSync(join(dir, files[k]!), 'w');
    try {
      writeAll(fd, header);
      for (const t of order) writer.write(fd, t);
    } finally {
      closeSync(fd);
    }
  });
  if (shards > 1) {
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
    writeFileSync(join(dir, 'model.safetensors.index.json'), pythonJson({ metadata: { total_size: totalBytes }, weight_map: sorted }) + '\n');
  }
  return result;
}

// ---- CLI --------------------------------------------------------------------------

function cli(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      arch: { type: 'string', default: 'qwen2_vl' },
      preset: { type: 'string', default: 'tiny' },
      dtype: { type: 'string', default: 'F32' },
      shards: { type: 'string', default: '1' },
      seed: { type: 'string', default: '0' },
      tie: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.out) {
    console.log(
      'usage: node dist/tools/checkpoint.js --out DIR [--arch qwen2_vl|qwen2_5_vl] [--preset tiny|2b|3b|7b]\n' +
        '                                      [--dtype F32|BF16|F16] [--shards N] [--seed N] [--tie true|false]',
    );
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const arch = values.arch as Arch;
  if (arch !== 'qwen2_vl' && arch !== 'qwen2_5_vl') throw new Error(`--arch must be qwen2_vl or qwen2_5_vl, got ${arch}`);
  const dtype = values.dtype!.toUpperCase() as CheckpointDtype;
  if (!['F32', 'BF16', 'F16'].includes(dtype)) throw new Error(`--dtype must be F32, BF16 or F16, got ${values.dtype}`);
  const t0 = performance.now();
  let last = 0;
  const info = writeCheckpoint(values.out, {
    arch,
    preset: values.preset,
    dtype,
    shards: Number(values.shards),
    seed: Number(values.seed),
    tieWordEmbeddings: values.tie === undefined ? undefined : values.tie === 'true',
    onProgress: (done, total) => {
      const now = performance.now();
      if (now - last > 2000 || done === total) {
        last = now;
        process.stderr.write(`\r${(done / 1e9).toFixed(2)} / ${(total / 1e9).toFixed(2)} GB`);
      }
    },
  });
  process.stderr.write('\n');
  console.log(`wrote ${info.files.length} file(s), ${info.tensors.length} tensors, ${(info.totalBytes / 1e9).toFixed(3)} GB to ${info.dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    cli(process.argv.slice(2));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
