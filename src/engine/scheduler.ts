import { IrisError, InvalidRequestError } from '../errors.js';
import { VisionLanguageModel } from '../models/model.js';
import { KvPagePool } from './kvPool.js';
import { EngineStats, FinishReason, GenerateMsg } from './messages.js';
import { SamplerState, sampleToken } from './sampler.js';
import { Sequence } from './sequence.js';

export interface StepEvent {
  seq: Sequence;
  finish: FinishReason | null;
  matchedStop: number | null;
}

/**
 * Runs requests on the model: waiting requests are prefilled one at a time when
 * pages allow, and every running sequence decodes one token per step in a single
 * batched graph run (continuous batching: sequences join and leave between steps).
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly scratch: Float32Array;

  constructor(
    private readonly model: VisionLanguageModel,
    readonly pool: KvPagePool,
    private readonly eosIds: number[],
    readonly contextLength: number,
    private readonly maxRunning: number,
  ) {
    this.scratch = new Float32Array(model.config.text.vocabSize);
  }

  add(msg: GenerateMsg): void {
    const total = msg.ids.length + msg.sampling.maxNewTokens;
    if (msg.ids.length >= this.contextLength) {
      throw new InvalidRequestError(`the prompt has ${msg.ids.length} tokens, which exceeds the context length of ${this.contextLength} tokens`, 'messages');
    }
    if (this.pool.pagesFor(Math.min(total, this.contextLength)) > this.pool.usablePages) {
      throw new InvalidRequestError(
        `the request needs up to ${total} tokens of KV cache but the pool holds ${this.pool.usablePages * this.pool.pageSize}`,
        'max_tokens',
      );
    }
    const sampler = new SamplerState(msg.sampling, msg.ids, msg.sampling.ignoreEos ? [] : this.eosIds);
    this.waiting.push(new Sequence(msg.id, msg.ids, msg.images, sampler));
  }

  abort(id: string): Sequence | null {
    const w = this.waiting.findIndex((s) => s.id === id);
    if (w >= 0) return this.waiting.splice(w, 1)[0]!;
    const seq = this.running.find((s) => s.id === id);
    if (seq) seq.aborted = true;
    return null;
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  stats(): EngineStats {
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      totalPages: this.pool.usablePages,
      freePages: this.pool.freePages,
      pageSize: this.pool.pageSize,
    };
  }

  /** One engine step: admit and prefill at most one request, else decode the running batch. */
  async step(): Promise<StepEvent[]> {
    const events: StepEvent[] = [];
    this.reapAborted(events);
    const next = this.waiting[0];
    if (next && this.running.length < this.maxRunning && this.pool.freePages >= this.pool.pagesFor(next.promptIds.length + 1)) {
      this.waiting.shift();
      await this.prefill(next, events);
      return events;
    }
    if (this.running.length > 0) await this.decode(events);
    return events;
  }

  private reapAborted(events: StepEvent[]): void {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const seq = this.running[i]!;
      if (seq.aborted) {
        this.finish(seq, i);
        events.push({ seq, finish: 'abort', matchedStop: null });
      }
    }
  }

  private finish(seq: Sequence, index: number): void {
    this.pool.release(seq.pages);
    seq.pages = [];
    this.running.splice(index, 1);
  }

  private async prefill(seq: Sequence, events: StepEvent[]): Promise<void> {
    const ids = seq.promptIds;
    seq.pages = this.pool.alloc(this.pool.pagesFor(ids.length));
    try {
      const embeds = await this.model.encodeImages(seq.images.map((i) => ({ pixelValues: i.pixelValues, grid: i.grid })));
      const hidden = this.model.config.text.hiddenSize;
      const rows = new Int32Array(ids.length).fill(-1);
      const extra = new Float32Array(embeds.reduce((a, e) => a + e.length, 0));
      let r = 0;
      seq.images.forEach((img, k) => {
        const e = embeds[k]!;
        extra.set(e, r * hidden);
        for (let j = 0; j < e.length / hidden; j++) rows[img.start + j] = r + j;
        r += e.length / hidden;
      });
      const pos = this.model.promptPositions(ids, seq.images);
      const logits = await this.model.forward([{ ids, positions: pos.positions, embedRows: rows, pages: seq.pages, pastLen: 0 }], extra, this.pool);
      seq.cachedLen = ids.length;
      seq.nextPos = pos.next;
      this.running.push(seq);
      this.accept(seq, logits.subarray(0, this.scratch.length), events);
    } catch (e) {
      this.pool.release(seq.pages);
      seq.pages = [];
      const i = this.running.indexOf(seq);
      if (i >= 0) this.running.splice(i, 1);
      throw e instanceof IrisError ? Object.assign(e, { seqId: seq.id }) : Object.assign(new IrisError((e as Error).message), { seqId: seq.id });
    }
  }

  private async decode(events: StepEvent[]): Promise<void> {
    const batch = this.running.slice();
    for (const seq of batch) {
      const need = this.pool.pagesFor(seq.cachedLen + 1);
      if (need > seq.pages.length) seq.pages.push(...this.pool.alloc(need - seq.pages.length));
    }
    const logits = await this.model.forward(
      batch.map((seq) => ({
        ids: [seq.lastToken],
        positions: Int32Array.of(seq.nextPos, seq.nextPos, seq.nextPos),
        pages: seq.pages,
        pastLen: seq.cachedLen,
      })),
      new Float32Array(0),
      this.pool,
    );
    const V = this.scratch.length;
    batch.forEach((seq, b) => {
      seq.cachedLen++;
      seq.nextPos++;
      this.accept(seq, logits.subarray(b * V, (b + 1) * V), events);
    });
  }

  /** Samples the next token of `seq` and decides whether it finished. */
  private accept(seq: Sequence, logits: Float32Array, events: StepEvent[]): void {
    const tok = sampleToken(logits, seq.sampler, this.scratch);
    seq.sampler.record(tok.tokenId);
    seq.output.push(tok.tokenId);
    seq.pending.push(tok);
    const p = seq.sampler.params;
    let finish: FinishReason | null = null;
    let matchedStop: number | null = null;
    const canStop = seq.output.length >= p.minNewTokens;
    if (canStop && (seq.sampler.eosIds.includes(tok.tokenId) || p.stopTokenIds.includes(tok.tokenId))) {
      finish = 'stop';
      matchedStop = tok.tokenId;
    } else if (seq.output.length >= p.maxNewTokens || seq.totalLen >= this.contextLength) {
      finish = 'length';
    }
    if (finish) this.finish(seq, this.running.indexOf(seq));
    events.push({ seq, finish, matchedStop });
  }

  /** Pages held by sequences (for leak checks). */
  get pagesInUse(): number {
    return this.pool.usablePages - this.pool.freePages;
  }
}
