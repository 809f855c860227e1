import { ImageForEngine, StepToken } from './messages.js';
import { SamplerState } from './sampler.js';

/** One request inside the engine: its tokens, pages, position and sampler state. */
export class Sequence {
  pages: number[] = [];
  /** Tokens whose K/V are in the pool. */
  cachedLen = 0;
  readonly output: number[] = [];
  /** M-RoPE position of the next token (all axes); set at prefill. */
  nextPos = 0;
  aborted = false;
  pending: StepToken[] = [];

  constructor(
    readonly id: string,
    readonly promptIds: Int32Array,
    readonly images: ImageForEngine[],
    readonly sampler: SamplerState,
  ) {}

  get lastToken(): number {
    return this.output[this.output.length - 1]!;
  }

  get totalLen(): number {
    return this.promptIds.length + this.output.length;
  }
}
