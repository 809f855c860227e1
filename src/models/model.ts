import type { QuantMode } from '../engine/memoryPlan.js';
import { KvPagePool } from '../engine/kvPool.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { ModelConfig } from './config.js';

/**
 * One image as its family's processor prepared it: pixel values, and `grid`, the layout
 * numbers the family needs to encode it and place its tokens (e.g. [t, h, w] patches for
 * Qwen2-VL). The engine treats `grid` as opaque: it only keys caches by it.
 */
export interface ImageInput {
  pixelValues: Float32Array;
  grid: number[];
}

/** One sequence's share of a forward pass: its new tokens on top of its cached past. */
export interface ForwardSeq {
  ids: ArrayLike<number>;
  /** [positionAxes][ids.length], axis-major positions of the new tokens. */
  positions: Int32Array;
  /** Per new token, the row of `extraEmbeds` replacing its embedding, or -1. */
  embedRows?: Int32Array;
  /** Per new token, its attention group (0: none): tokens of one group see each other both ways (Gemma 3's image tokens). */
  groups?: Int32Array;
  /** Families whose layers attend to image states: the sequence's images, in prompt order... */
  imageStates?: Array<{ state: Float32Array; grid: number[] }>;
  /** ...and per new token, the bitmask of those images it sees (0: none). */
  imageVisibility?: Int32Array;
  /** Pages holding the past and room for the new tokens. */
  pages: number[];
  /** Sliding-window layers: the sequence's ring of pages (token t in ring[(t / page) mod length]). */
  ring?: number[];
  pastLen: number;
}

/** What the engine needs from a vision-language architecture. */
export interface VisionLanguageModel {
  readonly config: ModelConfig;
  readonly pageSize: number;
  /** Image embeddings in the text width, one [tokens, hidden] array per image. */
  encodeImages(images: ImageInput[]): Promise<Float32Array[]>;
  /** Position axes per token: 1 for most families, 3 for M-RoPE (t, h, w). */
  readonly positionAxes: number;
  /** [positionAxes][ids.length] positions of a prompt whose images start at the given token indices, and the next position. */
  promptPositions(ids: ArrayLike<number>, images: Array<{ start: number; grid: number[] }>): { positions: Int32Array; next: number };
  /**
   * Per prompt token, its bidirectional attention group (0: causal only), for families whose
   * image tokens see each other both ways; a group is always computed in one pass. Absent: none.
   */
  promptGroups?(ids: ArrayLike<number>, images: Array<{ start: number; numTokens: number }>): Int32Array | null;
  /**
   * Families whose layers attend to the images' encodings at every step (cross-attention)
   * rather than reading them once as prompt embeddings: the engine keeps each image's encoding
   * with the sequence while it runs, and every prompt token's KV may depend on every image.
   */
  readonly keepsImageStates?: boolean;
  /** With keepsImageStates: per prompt token, the bitmask of images it sees; generated tokens see what the last prompt token sees. */
  promptImageVisibility?(ids: ArrayLike<number>, images: Array<{ start: number }>): Int32Array;
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
