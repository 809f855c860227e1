import type { QuantMode } from './memoryPlan.js';
import { SamplingParams } from './samplingParams.js';

/** Typed messages between the Engine (main thread) and the engine worker. */

/** Load-time messages for the user: `warning` ones always matter (e.g. weights quantized to fit). */
export type NoticeLevel = 'info' | 'warning';

export interface EngineOptions {
  modelPath: string;
  /** KV pool size in tokens; default from free memory. */
  maxTotalTokens?: number;
  /** Longest prompt + completion; default the model's max_position_embeddings. */
  contextLength?: number;
  maxRunningRequests?: number;
  /** ONNX Runtime intra-op threads; 0 = ORT's choice. */
  threads?: number;
  /** Requests waiting for the engine beyond the running ones before refusing (503). */
  maxQueuedRequests?: number;
  /** Most prompt tokens prefilled in one engine step. */
  chunkedPrefillSize?: number;
  disableRadixCache?: boolean;
  /** Image-embedding cache size. */
  visionCacheMb?: number;
  /** How linear layers hold their weights; `auto` (default): float32 if it fits in memory, else int8, else int4. */
  quantization?: QuantMode | 'auto' | 'awq' | 'gptq';
  /** Share of the available memory for weights and KV cache (SGLang's --mem-fraction-static); sizes the KV cache. */
  memFractionStatic?: number;
  /** MatMulNBits accuracy level of quantized weights: 4 (int8 activations, default) or 0 (float32, exact). */
  accuracyLevel?: 0 | 4;
}

export interface ImageForEngine {
  pixelValues: Float32Array;
  /** The family's layout numbers of the image (opaque to the engine; part of its cache keys). */
  grid: number[];
  /** Index of the image's first placeholder token in the prompt. */
  start: number;
  /** Tokens of the image's range, from its first to its last embedding row. */
  numTokens: number;
  /** Per token of the range, its embedding row or -1; absent when the range is all rows in order. */
  rowAt?: Int32Array;
  /** Content hash of the decoded image (cache key). */
  hash: string;
}

export interface GenerateMsg {
  type: 'generate';
  id: string;
  ids: Int32Array;
  images: ImageForEngine[];
  sampling: SamplingParams;
}

export type ToWorker =
  | { type: 'init'; options: EngineOptions }
  | GenerateMsg
  | { type: 'abort'; id: string }
  | { type: 'stats' }
  | { type: 'shutdown' };

export type FinishReason = 'stop' | 'length' | 'abort';

export interface StepToken {
  tokenId: number;
  logprob: number | null;
  top: Array<{ tokenId: number; logprob: number }> | null;
}

export interface EngineStats {
  running: number;
  waiting: number;
  totalPages: number;
  freePages: number;
  /** Pages held by the prefix cache (evictable unless a running request reads them). */
  cachedPages: number;
  /** Pages held by running requests. */
  usedPages: number;
  pageSize: number;
  promptTokens: number;
  cachedPromptTokens: number;
  visionCacheHits: number;
  visionCacheMisses: number;
  preemptions: number;
}

/** Share of KV pages held by running requests (0 when there are none). */
export function kvUsageRatio(s: EngineStats): number {
  return s.totalPages ? s.usedPages / s.totalPages : 0;
}

/** Share of prompt tokens served from the prefix cache since start. */
export function prefixHitRate(s: EngineStats): number {
  return s.promptTokens ? s.cachedPromptTokens / s.promptTokens : 0;
}

export interface ModelInfo {
  architecture: string;
  modelType: string;
  vocabSize: number;
  contextLength: number;
  maxTotalTokens: number;
  weightBytes: number;
  /** Bytes the weights take once loaded (float32 or quantized). */
  residentWeightBytes: number;
  quantization: QuantMode;
  /** What the memory plan chose and why, in one line. */
  memoryPlan: string;
  loadSeconds: number;
}

export type FromWorker =
  | { type: 'progress'; what: string; notice?: NoticeLevel }
  | { type: 'ready'; info: ModelInfo }
  | {
      type: 'tokens';
      id: string;
      tokens: StepToken[];
      finish: FinishReason | null;
      matchedStop: number | null;
      promptTokens: number;
      cachedTokens: number;
      /** Pixel buffers of a finished request, moved back for reuse. */
      spentPixels?: ArrayBuffer[];
    }
  | { type: 'error'; id: string | null; message: string; status: number; errorType: string }
  | { type: 'stats'; stats: EngineStats };
