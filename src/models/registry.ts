import { ModelLoadError } from '../errors.js';
import type { KvLayerSpec } from '../engine/kvPool.js';
import type { QuantMode } from '../engine/memoryPlan.js';
import { SessionWeights } from '../runtime/sessionWeights.js';
import { WeightStore } from '../runtime/weightStore.js';
import { join } from 'node:path';
import { Json, ModelConfig, readJson } from './config.js';
import { ModelLoadOptions, VisionLanguageModel } from './model.js';
import type { ImageProcessor, ImageProcessorOptions } from '../multimodal/processor.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { parseDeepseekVL2Config } from './deepseek_vl2/config.js';
import { DeepseekVL2Model } from './deepseek_vl2/model.js';
import { deepseekVL2ImageProcessor } from './deepseek_vl2/processor.js';
import { parseGemma3Config } from './gemma3/config.js';
import { Gemma3Model } from './gemma3/model.js';
import { gemma3ImageProcessor } from './gemma3/processor.js';
import { parseLlavaConfig } from './llava/config.js';
import { parseMiniCPMVConfig } from './minicpmv/config.js';
import { MiniCPMVModel } from './minicpmv/model.js';
import { minicpmvImageProcessor } from './minicpmv/processor.js';
import { parseMllamaConfig } from './mllama/config.js';
import { MllamaModel } from './mllama/model.js';
import { mllamaImageProcessor } from './mllama/processor.js';
import { llavaImageProcessor } from './llava/processor.js';
import { qwen2VLImageProcessor } from './qwen2_vl/processor.js';
import { LlavaModel } from './llava/model.js';
import { parseQwen2VLConfig } from './qwen2_vl/config.js';
import { Qwen2VLModel } from './qwen2_vl/model.js';

type LoadedModel = VisionLanguageModel & { weightBytes: number; residentBytes: number };
/** What the registry knows of a family: how to read its config.json, load it and size it. */
interface Family {
  parseConfig(raw: Json, architecture: string): ModelConfig;
  /** The image processor and prompt layout, from the checkpoint's processor files. */
  imageProcessor(modelDir: string, config: ModelConfig, tokenizer: TextTokenizer, opts: ImageProcessorOptions): ImageProcessor;
  load(store: WeightStore, config: ModelConfig, opts: ModelLoadOptions): Promise<LoadedModel>;
  /** What each decoder layer keeps in the KV cache. */
  kvLayers(config: ModelConfig): KvLayerSpec[];
  /** The built-in chat template for checkpoints that ship none. */
  chatTemplate?: string;
  /** Bytes of weights the model would hold with these options, without reading them. */
  residentBytes(store: WeightStore, config: ModelConfig, opts: ModelLoadOptions): number;
  /** The sessions' graphs and weights, built without reading the weights. */
  graphs: ModelClass['graphs'];
}

/** Each decoder layer keeps K and V of kv heads * head dim for every token, or for its sliding window; cross-attention layers keep nothing per token. */
const fullKv = (c: ModelConfig): KvLayerSpec[] =>
  Array.from({ length: c.text.numLayers }, (_, i): KvLayerSpec => {
    if (c.text.crossAttentionLayers?.includes(i)) return { kind: 'cross', width: 0 };
    if (c.text.mla) return { kind: 'latent', width: c.text.mla.kvLoraRank + c.text.mla.ropeDim };
    const width = c.text.numKvHeads * c.text.headDim;
    const window = c.text.layerWindows?.[i] ?? null;
    return window === null ? { kind: 'full', width } : { kind: 'window', width, window };
  });

/** A family's model class: its graphs (built without reading weights) and its loader. */
interface ModelClass {
  graphs(store: WeightStore, config: ModelConfig, opts: ModelLoadOptions): { vision: { w: SessionWeights }; text: { w: SessionWeights } };
  load(store: WeightStore, config: ModelConfig, opts: ModelLoadOptions): Promise<LoadedModel>;
}

/** A family of a vision tower and a decoder whose layers all keep full K and V. */
function towerAndDecoder(parseConfig: Family['parseConfig'], imageProcessor: Family['imageProcessor'], model: ModelClass, chatTemplate?: string): Family {
  return {
    chatTemplate,
    parseConfig,
    imageProcessor,
    kvLayers: fullKv,
    load: (s, c, o) => model.load(s, c, o),
    graphs: (s, c, o) => model.graphs(s, c, o),
    residentBytes: (s, c, o) => {
      const { vision, text } = model.graphs(s, c, o);
      return vision.w.residentBytes + text.w.residentBytes;
    },
  };
}

const qwen2vl = towerAndDecoder(parseQwen2VLConfig, (dir) => qwen2VLImageProcessor(dir), Qwen2VLModel);
const llava = towerAndDecoder(parseLlavaConfig, (dir, c) => llavaImageProcessor(dir, c.modelType), LlavaModel);
const gemma3 = towerAndDecoder(parseGemma3Config, gemma3ImageProcessor, Gemma3Model);
const mllama = towerAndDecoder(parseMllamaConfig, mllamaImageProcessor, MllamaModel);
const minicpmv = towerAndDecoder(parseMiniCPMVConfig, minicpmvImageProcessor, MiniCPMVModel);
const deepseekVl2 = towerAndDecoder(parseDeepseekVL2Config, deepseekVL2ImageProcessor, DeepseekVL2Model, 'deepseek-vl2');

/** architectures[0] of config.json -> the family that builds it. */
const REGISTRY: Record<string, Family> = {
  Qwen2_5_VLForConditionalGeneration: qwen2vl,
  Qwen2VLForConditionalGeneration: qwen2vl,
  LlavaForConditionalGeneration: llava,
  LlavaNextForConditionalGeneration: llava,
  LlavaOnevisionForConditionalGeneration: llava,
  Gemma3ForConditionalGeneration: gemma3,
  MllamaForConditionalGeneration: mllama,
  MiniCPMV: minicpmv,
  DeepseekVLV2ForCausalLM: deepseekVl2,
};

function family(config: ModelConfig): Family {
  const f = REGISTRY[config.architecture];
  if (!f) throw new ModelLoadError(`unsupported architecture ${config.architecture}`);
  return f;
}

/** Reads a checkpoint's config.json with the parser of the family its `architectures[0]` names. */
export function loadModelConfig(modelDir: string): ModelConfig {
  const file = join(modelDir, 'config.json');
  const raw = readJson(file, 'config.json');
  const architecture = (raw.architectures?.[0] as string | undefined) ?? '';
  const f = REGISTRY[architecture];
  if (!f) throw new ModelLoadError(`unsupported architecture "${architecture || '(none)'}" in ${file}; supported: ${Object.keys(REGISTRY).join(', ')}`);
  return f.parseConfig(raw, architecture);
}

export async function loadModel(modelDir: string | WeightStore, config: ModelConfig, opts: ModelLoadOptions = {}): Promise<LoadedModel> {
  return family(config).load(typeof modelDir === 'string' ? WeightStore.open(modelDir) : modelDir, config, opts);
}

/** The built-in chat template a family uses when its checkpoints ship none (e.g. DeepSeek-VL2's). */
export function defaultChatTemplate(config: ModelConfig): string | undefined {
  return family(config).chatTemplate;
}

/** The image processor of a checkpoint's family. */
export function loadImageProcessor(modelDir: string, config: ModelConfig, tokenizer?: TextTokenizer, opts: ImageProcessorOptions = {}): ImageProcessor {
  return family(config).imageProcessor(modelDir, config, tokenizer ?? TextTokenizer.load(modelDir), opts);
}

/** The KV cache layout of a model's decoder layers. */
export function kvLayers(config: ModelConfig): KvLayerSpec[] {
  return family(config).kvLayers(config);
}

/** Resident weight bytes per quantization mode, from the graphs alone (nothing is read or written). */
export function residentBytesByMode(store: WeightStore, config: ModelConfig, modes: QuantMode[]): Partial<Record<QuantMode, number>> {
  const f = family(config);
  return Object.fromEntries(modes.map((m) => [m, f.residentBytes(store, config, { quantization: m })]));
}

/** The vision and text sessions' graphs and weights with these options (nothing is read): what each session holds. */
export function modelGraphs(store: WeightStore, config: ModelConfig, opts: ModelLoadOptions = {}): { vision: { w: SessionWeights }; text: { w: SessionWeights } } {
  return family(config).graphs(store, config, opts);
}
