import { ImageForEngine, StepToken } from './messages.js';
import { SamplerState } from './sampler.js';
import type { MaskState } from '../structured/grammarService.js';
import type { WindowSnapshot } from './prefixCache.js';

/** Base of the cache keys standing for image tokens (above any vocabulary). */
const IMAGE_KEY_BASE = 1 << 30;

/** A stable 30-bit number per (image content, grid): the image's tokens' prefix-cache key. */
export function imageKey(hash: string, grid: number[]): number {
  let h = 0x811c9dc5;
  const s = `${hash}|${grid.join('x')}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return IMAGE_KEY_BASE + ((h >>> 0) % IMAGE_KEY_BASE);
}

/** One request inside the engine: its tokens, pages, positions and sampler state. */
export class Sequence {
  /** Pages in token order: cache pages read in place first, then this sequence's own. */
  pages: number[] = [];
  /** The sliding-window layers' ring of pages (empty without such layers). */
  ring: number[] = [];
  /** Copies of the window K/V at the end of the prompt, kept for the prefix cache once the ring moves on. */
  snapshots: WindowSnapshot[] = [];
  /** Cache nodes this sequence reads in place (unlocked when it leaves). */
  locked: unknown[] = [];
  /** Tokens whose K/V are in `pages`. */
  cachedLen = 0;
  /** Prompt tokens that came from the prefix cache at the last admission. */
  cachedPromptTokens = 0;
  readonly output: number[] = [];
  /** Prefix-cache keys of every token (prompt with image keys, then outputs). */
  readonly keys: number[];
  /** Prompt positions [axes][promptLen] and the position after the prompt; set at admission. */
  promptPositions: Int32Array | null = null;
  promptNext = 0;
  /** Per image: its embeddings while its tokens still need computing. */
  embeds: Array<Float32Array | null>;
  aborted = false;
  pending: StepToken[] = [];
  /** With a grammar: the mask for the next token, asked for as soon as the last one was chosen. */
  grammarMask: Promise<MaskState> | null = null;
  readonly arrival: number;
  private static counter = 0;

  /** Per bidirectional attention group of the prompt, its first and last token. */
  private readonly groupSpans = new Map<number, [number, number]>();

  /**
   * `groups`: per prompt token, its bidirectional attention group (0: none), from the model.
   * Images whose tokens share a group see each other, so their tokens' cache keys stand for
   * all of the group's images together.
   */
  constructor(
    readonly id: string,
    readonly promptIds: Int32Array,
    readonly images: ImageForEngine[],
    readonly sampler: SamplerState,
    readonly groups: Int32Array | null = null,
    /** Per prompt token, the images it sees through cross-attention (bitmask), for families that keep image states. */
    readonly visibility: Int32Array | null = null,
  ) {
    this.arrival = Sequence.counter++;
    this.keys = Array.from(promptIds);
    // Tokens before an image may see it through cross-attention: a prompt's every key then
    // stands for its tokens together with all its images.
    if (visibility && images.length > 0) {
      const all = images.map((m) => m.hash).join('+');
      for (let i = 0; i < images[0]!.start; i++) this.keys[i] = imageKey(`${all}|${promptIds[i]}`, [i]);
    }
    groups?.forEach((g, i) => {
      if (g === 0) return;
      const span = this.groupSpans.get(g);
      if (span) span[1] = i;
      else this.groupSpans.set(g, [i, i]);
    });
    const byGroup = new Map<number, ImageForEngine[]>();
    for (const img of images) {
      const g = groups?.[img.start] ?? 0;
      if (g !== 0) byGroup.set(g, [...(byGroup.get(g) ?? []), img]);
    }
    for (const img of images) {
      const n = img.numTokens;
      const members = byGroup.get(groups?.[img.start] ?? 0);
      const k = members && members.length > 1 ? imageKey(members.map((m) => m.hash).join('+'), members.flatMap((m) => [...m.grid, -1])) : imageKey(img.hash, img.grid);
      for (let j = 0; j < n && img.start + j < this.keys.length; j++) this.keys[img.start + j] = k;
    }
    this.embeds = images.map(() => null);
  }

  /**
   * How many of the `n` tokens from `cachedLen` to compute in one pass so that no attention
   * group is split: a chunk ending inside a group stops before it, or, when it starts inside
   * or at the group, runs to the group's end.
   */
  chunkLength(n: number): number {
    const from = this.cachedLen;
    const end = from + n;
    for (const [first, last] of this.groupSpans.values()) {
      if (first < end && last >= end && last >= from) return first > from ? first - from : last + 1 - from;
    }
    return n;
  }

  get totalLen(): number {
    return this.promptIds.length + this.output.length;
  }

  /** Token id at index i of prompt + output. */
  tokenAt(i: number): number {
    return i < this.promptIds.length ? this.promptIds[i]! : this.output[i - this.promptIds.length]!;
  }

  /** Tokens still to feed before the next token can be sampled. */
  get pendingTokens(): number {
    return this.totalLen - this.cachedLen;
  }

  /** The images token i sees through cross-attention (generated tokens: as the last prompt token). */
  visibleImages(i: number): number {
    const v = this.visibility!;
    return v[Math.min(i, v.length - 1)]!;
  }

  /** Position of token i on axis a. */
  position(i: number, axis: number): number {
    const n = this.promptIds.length;
    return i < n ? this.promptPositions![axis * n + i]! : this.promptNext + (i - n);
  }

  /** The image (index) whose range includes prompt position i, and the embedding row of that token (-1: none), or null. */
  imageAt(i: number): { image: number; row: number } | null {
    for (let k = 0; k < this.images.length; k++) {
      const img = this.images[k]!;
      const n = img.numTokens;
      if (i >= img.start && i < img.start + n) return { image: k, row: img.rowAt ? img.rowAt[i - img.start]! : i - img.start };
    }
    return null;
  }
}
