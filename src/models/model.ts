import type { QuantMode } from '../engine/memoryPlan.js';
import { KvPagePool } from '../engine/kvPool.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { ModelConfig } from './config.js';
import { GridThw } from './visionLayout.js';

export interface ImageInput {
  /** [patches, C*T*P*P] as the processor produced it. */
  pixelValues: Float32Array;
  grid: GridThw;
}

/** One sequence's share of a forward pass: its new tokens on top of its cached past. */
export interface ForwardSeq {
  ids: ArrayLike<number>;
  /** [3][ids.length], axis-major (t, h, w) positions of the new tokens. */
  positions: Int32Array;
  /** Per new token, the row of `extraEmbeds` replacing its embedding, or -1. */
  embedRows?: Int32Array;
  /** Pages holding the past and room for the new tokens. */
  pages: number[];
  pastLen: number;
}

/** What the engine needs from a vision-language architecture. */
export interface VisionLanguageModel {
  readonly config: ModelConfig;
  readonly pageSize: number;
  /** Image embeddings in the text width, one [tokens, hidden] array per image. */
  encodeImages(images: ImageInput[]): Promise<Float32Array[]>;
  /** 3-axis positions of a prompt whose images start at the given token indices. */
  promptPositions(ids: ArrayLike<number>, images: Array<{ start: number; grid: GridThw }>): { positions: Int32Array; next: number };
  /** Runs the decoder; writes new K/V into the pool; returns last-token logits [B, vocab]. */
  forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts?: { packed?: boolean }): Promise<Float32Array>;
  release(): Promise<void>;
}

export interface ModelLoadOptions extends RuntimeOptions {
  pageSize?: number;
  /** How linear layers hold their weights (default none: float32). */
  quantization?: QuantMode;
  /** MatMulNBits accuracy level: 4 (int8 activations, fast; default) or 0 (float32, exact). */
  accuracyLevel?: 0 | 4;
  onProgress?: (what: string) => void;
}
