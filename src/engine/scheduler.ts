import { IrisError, InvalidRequestError } from '../errors.js';
import { ForwardSeq, VisionLanguageModel } from '../models/model.js';
import { KvPagePool } from './kvPool.js';
import { EngineStats, FinishReason, GenerateMsg } from './messages.js';
import { PrefixCache, PrefixMatch } from './prefixCache.js';
import { SamplerState, sampleToken } from './sampler.js';
import { Sequence } from './sequence.js';
import type { GrammarService, MaskState } from '../structured/grammarService.js';
import { VisionCache } from './visionCache.js';

export interface StepEvent {
  seq: Sequence;
  finish: FinishReason | null;
  matchedStop: number | null;
  /** The sequence failed (its grammar state broke): reported as an error, not a finish. */
  error?: string;
}

export interface SchedulerOptions {
  contextLength: number;
  maxRunning: number;
  maxQueued: number;
  /** Most prompt tokens prefilled in one step. */
  chunkedPrefillSize: number;
  radixCache: boolean;
  visionCacheBytes: number;
}

/**
 * Time of one model run as a fixed part (reading the weights) plus a part per
 * token, fitted by least squares over recent runs (older runs weigh less).
 */
class RunCostModel {
  private w = 0;
  private x = 0;
  private y = 0;
  private xx = 0;
  private xy = 0;

  add(tokens: number, ms: number): void {
    const d = 0.97;
    this.w = this.w * d + 1;
    this.x = this.x * d + tokens;
    this.y = this.y * d + ms;
    this.xx = this.xx * d + tokens * tokens;
    this.xy = this.xy * d + tokens * ms;
  }

  /** [fixed ms, ms per token], or null until the runs seen vary enough in size. */
  fit(): [number, number] | null {
    const den = this.w * this.xx - this.x * this.x;
    if (this.w < 2 || den <= 1e-9 * this.w * this.xx) return null;
    const b = (this.w * this.xy - this.x * this.y) / den;
    const a = (this.y - b * this.x) / this.w;
    return b > 0 ? [Math.max(0, a), b] : null;
  }
}

/** Largest attention mask (rows x keys) a packed run may build; beyond it, runs are split. */
const PACKED_MASK_LIMIT = 16 * 1024 * 1024;

/**
 * Continuous batching. Each step: admit waiting requests while pages allow
 * (reusing cached prefixes), encode the new requests' images together, run all
 * sequences that need one token (decode) in one batched graph run, then prefill
 * waiting prompt tokens in chunks under a token budget. While others decode, the
 * budget is sized so a chunk costs about as much as a decode step, so a long
 * prompt never stalls the running streams for long.
 */
export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly scratch: Float32Array;
  readonly cache: PrefixCache | null;
  private readonly vision: VisionCache;
  private readonly cost = new RunCostModel();
  private promptTokens = 0;
  private cachedPromptTokens = 0;
  private preemptions = 0;
  /** The window of the model's sliding-window layers (their K/V in rings), or null. */
  private readonly window: number | null;
  /** The grammar thread, once a constrained request came (its state opened before `add`). */
  grammars: GrammarService | null = null;

  constructor(
    private readonly model: VisionLanguageModel,
    readonly pool: KvPagePool,
    private readonly eosIds: number[],
    private readonly opts: SchedulerOptions,
  ) {
    this.scratch = new Float32Array(model.config.text.vocabSize);
    this.cache = opts.radixCache ? new PrefixCache(pool) : null;
    this.vision = new VisionCache(opts.visionCacheBytes);
    const windows = pool.layers.filter((l) => l.kind === 'window').map((l) => l.window!);
    this.window = windows.length ? Math.max(...windows) : null;
  }

  get contextLength(): number {
    return this.opts.contextLength;
  }

  add(msg: GenerateMsg): void {
    const total = msg.ids.length + msg.sampling.maxNewTokens;
    if (msg.ids.length >= this.opts.contextLength) {
      throw new InvalidRequestError(`the prompt has ${msg.ids.length} tokens, which exceeds the context length of ${this.opts.contextLength} tokens`, 'messages');
    }
    if (this.pool.pagesFor(Math.min(total, this.opts.contextLength)) > this.pool.usablePages) {
      throw new InvalidRequestError(`the request needs up to ${total} tokens of KV cache but the pool holds ${this.pool.usablePages * this.pool.pageSize}`, 'max_tokens');
    }
    if (this.pool.ringSize > 0 && this.pool.ringFor(total) > this.pool.windowPages - 1) {
      throw new InvalidRequestError(`the request needs ${this.pool.ringFor(total)} pages of sliding-window KV cache but the pool holds ${this.pool.windowPages - 1}`, 'max_tokens');
    }
    // Free running slots absorb arrivals before the next step admits them.
    if (this.waiting.length >= this.opts.maxQueued + Math.max(0, this.opts.maxRunning - this.running.length)) {
      throw new IrisError(`the engine queue is full (${this.waiting.length} waiting); retry shortly`, { status: 503, type: 'ServiceUnavailableError' });
    }
    const sampler = new SamplerState(msg.sampling, msg.ids, msg.sampling.ignoreEos ? [] : this.eosIds);
    const m = this.model;
    const seq = new Sequence(msg.id, msg.ids, msg.images, sampler, m.promptGroups?.(msg.ids, msg.images) ?? null, m.keepsImageStates ? m.promptImageVisibility!(msg.ids, msg.images) : null);
    if (msg.sampling.constraint) {
      if (!this.grammars) throw new IrisError('a constrained request came before its grammar state');
      seq.grammarMask = this.askMask(seq, -1);
    }
    this.waiting.push(seq);
  }

  /** Marks a request aborted; returns it if it was still waiting (removed at once). */
  abort(id: string): Sequence | null {
    const w = this.waiting.findIndex((s) => s.id === id);
    if (w >= 0) {
      const seq = this.waiting.splice(w, 1)[0]!;
      this.releasePages(seq);
      return seq;
    }
    const seq = this.running.find((s) => s.id === id);
    if (seq) seq.aborted = true;
    return null;
  }

  get idle(): boolean {
    return this.waiting.length === 0 && this.running.length === 0;
  }

  stats(): EngineStats {
    const cached = this.cache?.pages ?? 0;
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      totalPages: this.pool.usablePages,
      freePages: this.pool.freePages,
      cachedPages: cached,
      usedPages: this.pool.usablePages - this.pool.freePages - cached,
      pageSize: this.pool.pageSize,
      promptTokens: this.promptTokens,
      cachedPromptTokens: this.cachedPromptTokens,
      visionCacheHits: this.vision.hits,
      visionCacheMisses: this.vision.misses,
      preemptions: this.preemptions,
    };
  }

  async step(): Promise<StepEvent[]> {
    const events: StepEvent[] = [];
    this.reapAborted(events);
    const admitted = this.admit();
    await this.encodeImages(admitted);

    const decode = this.reserveDecodeSlots(this.running.filter((s) => s.pendingTokens === 1), events);
    const prefill = this.running.filter((s) => s.pendingTokens > 1).sort((a, b) => a.arrival - b.arrival);
    let budget = this.prefillBudget(decode.length);
    const chunks: Array<[Sequence, number]> = [];
    for (const seq of prefill) {
      if (budget <= 0) break;
      const n = seq.chunkLength(Math.min(seq.pendingTokens, budget));
      budget -= n;
      chunks.push([seq, n]);
    }
    const all: Array<[Sequence, number]> = [...decode.map((s): [Sequence, number] => [s, 1]), ...chunks];
    if (all.length === 0) return events;
    if (chunks.length === 0) {
      await this.run(all, false, events);
    } else {
      const rows = all.reduce((a, [, n]) => a + n, 0);
      const keys = all.reduce((a, [s]) => a + Math.ceil(s.cachedLen / this.pool.pageSize) * this.pool.pageSize, 0) + rows;
      if (rows * keys <= PACKED_MASK_LIMIT) await this.run(all, true, events);
      else {
        if (decode.length > 0) await this.run(all.slice(0, decode.length), false, events);
        for (const c of chunks) await this.run([c], false, events);
      }
    }
    return events;
  }

  /**
   * Prompt tokens to prefill this step. Alone, up to --chunked-prefill-size; next
   * to decoding requests, as many as keep the step within about 1.8x a decode-only
   * step (from the fitted run cost), so running streams slow down by less than 2x.
   */
  private prefillBudget(decoding: number): number {
    const max = this.opts.chunkedPrefillSize;
    if (decoding === 0) return max;
    const fit = this.cost.fit();
    if (!fit) return Math.min(max, 16);
    const [a, b] = fit;
    return Math.max(1, Math.min(max, Math.floor((0.8 * (a + b * decoding)) / b)));
  }

  // ---- admission and pages -------------------------------------------------

  /**
   * Once a prompt is computed, copies its last window's K/V out of the ring if the answer
   * could overwrite it there, so that the prefix cache can continue from the prompt's end
   * (the same image, the same question). Best effort: only with window pages to spare.
   */
  private snapshotPromptWindow(seq: Sequence): void {
    if (!this.cache || this.window === null || seq.ring.length === 0) return;
    const ps = this.pool.pageSize;
    const end = seq.promptIds.length;
    // A repeat of the prompt matches all but its last token: the window before that.
    const first = Math.floor(Math.max(0, end - this.window) / ps);
    const last = Math.floor((end - 1) / ps);
    const maxLen = end + seq.sampler.params.maxNewTokens;
    // The ring keeps page `first` until page first + ring length is written.
    if (maxLen <= (first + seq.ring.length) * ps) return;
    const count = last - first + 1;
    if (this.pool.freeWindowPages < count) return;
    const pages = this.pool.allocRing(count);
    for (let i = first; i <= last; i++) {
      const w = pages[i - first]!;
      this.pool.copyWindowPage(seq.ring[i % seq.ring.length]!, w);
      seq.snapshots.push({ pageIndex: i, windowPage: w, len: Math.min(ps, end - i * ps) });
    }
  }

  /** Makes `n` window pages free, forgetting cached window K/V if needed. */
  private ensureWindowFree(n: number): boolean {
    if (this.pool.freeWindowPages < n && this.cache) this.cache.dropWindowPages(n - this.pool.freeWindowPages);
    return this.pool.freeWindowPages >= n;
  }

  /** Makes `n` pages free, evicting cached prefixes if needed. */
  private ensureFree(n: number): boolean {
    if (this.pool.freePages < n && this.cache) this.cache.evict(n - this.pool.freePages);
    return this.pool.freePages >= n;
  }

  private admit(): Sequence[] {
    const admitted: Sequence[] = [];
    while (this.waiting.length > 0 && this.running.length < this.opts.maxRunning) {
      const seq = this.waiting[0]!;
      const target = seq.totalLen;
      // Keep the last token out of the match: its logits are needed.
      let m: PrefixMatch = this.cache?.match(seq.keys, target - 1) ?? { nodes: [], copyFrom: null, tokens: 0 };
      // Window layers continue from a match only where its last window's K/V is cached too.
      if (this.window !== null && this.cache) m = this.cache.limitToWindow(m, this.window);
      const need = this.pool.pagesFor(target) - m.nodes.length;
      // The ring covers the whole sequence (prompt and answer) or, if longer, a window.
      const ringLen = this.pool.ringFor(seq.promptIds.length + seq.sampler.params.maxNewTokens);
      if (!this.ensureFree(need) || !this.ensureWindowFree(ringLen)) {
        this.cache?.unlock(m.nodes);
        break;
      }
      this.waiting.shift();
      seq.pages = m.nodes.map((n) => n.page);
      seq.locked = m.nodes;
      if (m.copyFrom) {
        const [p] = this.pool.alloc(1);
        this.pool.copyPage(m.copyFrom.page, p!, m.copyFrom.len);
        seq.pages.push(p!);
      }
      seq.pages.push(...this.pool.alloc(this.pool.pagesFor(target) - seq.pages.length));
      if (ringLen > 0) {
        seq.ring = this.pool.allocRing(ringLen);
        for (const [i, w] of m.windowPages ?? []) this.pool.copyWindowPage(w, seq.ring[i % ringLen]!);
      }
      seq.cachedLen = m.tokens;
      if (seq.output.length === 0) {
        seq.cachedPromptTokens = m.tokens;
        this.promptTokens += seq.promptIds.length;
        this.cachedPromptTokens += m.tokens;
      }
      if (!seq.promptPositions) {
        const pos = this.model.promptPositions(seq.promptIds, seq.images);
        seq.promptPositions = pos.positions;
        seq.promptNext = pos.next;
      }
      this.running.push(seq);
      admitted.push(seq);
    }
    return admitted;
  }

  /** Gives back a sequence's pages: to the prefix cache (what was computed) or the pool. */
  private releasePages(seq: Sequence): void {
    if (this.cache) this.cache.insert(seq.keys, seq.cachedLen, seq.pages, seq.locked as never[], seq.ring, seq.snapshots);
    else {
      this.pool.release(seq.pages);
      this.pool.releaseRing([...seq.ring, ...seq.snapshots.map((s) => s.windowPage)]);
    }
    seq.pages = [];
    seq.ring = [];
    seq.snapshots = [];
    seq.locked = [];
    seq.embeds = seq.embeds.map(() => null);
  }

  private leave(seq: Sequence): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.releasePages(seq);
  }

  /** Frees the newest running request's pages and puts it back first in line; it is recomputed later. */
  private preemptNewest(except: Set<Sequence>): boolean {
    const victims = this.running.filter((s) => !except.has(s)).sort((a, b) => b.arrival - a.arrival);
    const victim = victims[0] ?? [...this.running].sort((a, b) => b.arrival - a.arrival)[0];
    if (!victim) return false;
    this.leave(victim);
    victim.cachedLen = 0;
    this.waiting.unshift(victim);
    this.preemptions++;
    return true;
  }

  private reapAborted(events: StepEvent[]): void {
    for (const seq of this.running.filter((s) => s.aborted)) {
      this.leave(seq);
      events.push({ seq, finish: 'abort', matchedStop: null });
    }
  }

  // ---- vision ---------------------------------------------------------------

  /** Embeddings for the images whose tokens the new sequences still have to compute, in one vision run. */
  private async encodeImages(seqs: Sequence[]): Promise<void> {
    const todo: Array<{ seq: Sequence; k: number; key: string }> = [];
    for (const seq of seqs) {
      seq.images.forEach((img, k) => {
        if (seq.embeds[k] || (!this.model.keepsImageStates && img.start + img.numTokens <= seq.cachedLen)) return;
        const key = `${img.hash}|${img.grid.join('x')}`;
        const hit = this.vision.get(key);
        if (hit) seq.embeds[k] = hit;
        else todo.push({ seq, k, key });
      });
    }
    if (todo.length === 0) return;
    // The same image in several new requests is encoded once.
    const unique = new Map<string, { seq: Sequence; k: number }>();
    for (const t of todo) if (!unique.has(t.key)) unique.set(t.key, t);
    const list = [...unique.entries()];
    let embeds: Float32Array[];
    try {
      embeds = await this.model.encodeImages(list.map(([, t]) => ({ pixelValues: t.seq.images[t.k]!.pixelValues, grid: t.seq.images[t.k]!.grid })));
    } catch (e) {
      for (const s of new Set(todo.map((t) => t.seq))) this.leave(s);
      throw Object.assign(e instanceof IrisError ? e : new IrisError((e as Error).message), { seqIds: [...new Set(todo.map((t) => t.seq.id))] });
    }
    list.forEach(([key], i) => this.vision.set(key, embeds[i]!));
    for (const t of todo) t.seq.embeds[t.k] = embeds[list.findIndex(([key]) => key === t.key)]!;
  }

  // ---- model runs -------------------------------------------------------------

  /** The forward inputs of tokens [from, from + n) of a sequence, with image rows appended to `extra`. */
  private slice(seq: Sequence, from: number, n: number, extra: Float32Array[], extraRows: { count: number }): ForwardSeq {
    const hidden = this.model.config.text.hiddenSize;
    const ids = new Int32Array(n);
    const axes = this.model.positionAxes;
    const positions = new Int32Array(axes * n);
    let rows: Int32Array | undefined;
    const base = new Map<number, number>();
    for (let j = 0; j < n; j++) {
      const i = from + j;
      ids[j] = seq.tokenAt(i);
      for (let a = 0; a < axes; a++) positions[a * n + j] = seq.position(i, a);
      if (i < seq.promptIds.length) {
        const at = seq.imageAt(i);
        if (at && at.row >= 0) {
          rows ??= new Int32Array(n).fill(-1);
          let b = base.get(at.image);
          if (b === undefined) {
            const e = seq.embeds[at.image];
            if (!e) throw new IrisError(`image ${at.image + 1} of request ${seq.id} has no embeddings`);
            b = extraRows.count;
            base.set(at.image, b);
            extra.push(e);
            extraRows.count += e.length / hidden;
          }
          rows[j] = b + at.row;
        }
      }
    }
    const groups = seq.groups && from < seq.promptIds.length ? Int32Array.from({ length: n }, (_, j) => seq.groups![from + j] ?? 0) : undefined;
    const fs: ForwardSeq = { ids, positions, embedRows: rows, groups, pages: seq.pages, ring: seq.ring.length ? seq.ring : undefined, pastLen: from };
    if (this.model.keepsImageStates) {
      fs.imageStates = seq.images.map((img, k) => {
        const state = seq.embeds[k];
        if (!state) throw new IrisError(`image ${k + 1} of request ${seq.id} has no encoding`);
        return { state, grid: img.grid };
      });
      fs.imageVisibility = Int32Array.from({ length: n }, (_, j) => seq.visibleImages(from + j));
    }
    return fs;
  }

  private static concat(parts: Float32Array[]): Float32Array {
    if (parts.length === 1) return parts[0]!;
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) (out.set(p, o), (o += p.length));
    return out;
  }

  /** Every decoding sequence needs a slot for its new token; preempts the newest when pages run out. */
  private reserveDecodeSlots(batch: Sequence[], events: StepEvent[]): Sequence[] {
    for (const seq of batch) {
      if (!this.running.includes(seq)) continue;
      const need = this.pool.pagesFor(seq.cachedLen + 1) - seq.pages.length;
      if (need <= 0) continue;
      while (!this.ensureFree(need)) {
        if (!this.preemptNewest(new Set([seq])) || !this.running.includes(seq)) break;
      }
      if (!this.running.includes(seq)) continue;
      if (this.pool.freePages < need) {
        // Alone and still no room: nothing left to preempt.
        this.leave(seq);
        events.push({ seq, finish: 'length', matchedStop: null });
        continue;
      }
      seq.pages.push(...this.pool.alloc(need));
    }
    return batch.filter((s) => this.running.includes(s));
  }

  /** One model run over (sequence, new tokens) pairs; samples for those whose input is complete. */
  private async run(items: Array<[Sequence, number]>, packed: boolean, events: StepEvent[]): Promise<void> {
    const extra: Float32Array[] = [];
    const rows = { count: 0 };
    const inputs = items.map(([s, n]) => this.slice(s, s.cachedLen, n, extra, rows));
    const seqs = items.map(([s]) => s);
    // Tokens the run computed (padded runs compute their padding too).
    const computed = packed ? items.reduce((a, [, n]) => a + n, 0) : items.length * Math.max(...items.map(([, n]) => n));
    const t0 = performance.now();
    const logits = await this.guard(seqs, () => this.model.forward(inputs, Scheduler.concat(extra.length ? extra : [new Float32Array(0)]), this.pool, { packed }));
    this.cost.add(computed, performance.now() - t0);
    const V = this.scratch.length;
    const ready: Array<[Sequence, number]> = [];
    items.forEach(([seq, n], k) => {
      seq.cachedLen += n;
      if (seq.cachedLen === seq.promptIds.length && seq.output.length === 0) this.snapshotPromptWindow(seq);
      if (seq.pendingTokens === 0) {
        if (!this.model.keepsImageStates) seq.embeds = seq.embeds.map(() => null);
        ready.push([seq, k]);
      }
    });
    // Grammar masks were asked for when the previous tokens were chosen, and computed while the
    // model ran: usually ready by now.
    const masks = await Promise.all(ready.map(([s]) => s.grammarMask?.catch((e: Error) => e) ?? null));
    ready.forEach(([seq, k], j) => {
      // An abort may have come in while the masks were awaited.
      if (this.running.includes(seq)) this.accept(seq, logits.subarray(k * V, (k + 1) * V), events, masks[j]!);
    });
  }

  /** A failed run fails the sequences in it (and only those); the engine goes on. */
  private async guard<T>(seqs: Sequence[], run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      for (const s of seqs) this.leave(s);
      throw Object.assign(e instanceof IrisError ? e : new IrisError((e as Error).message), { seqIds: seqs.map((s) => s.id) });
    }
  }

  /** Asks the grammar thread for the mask after `token`; a failure is read when the mask is needed (or never, if the sequence ends first). */
  private askMask(seq: Sequence, token: number): Promise<MaskState> {
    const p = this.grammars!.next(seq.id, token);
    p.catch(() => undefined);
    return p;
  }

  /** Samples the next token of `seq` (within its grammar's mask, if any) and decides whether it finished. */
  private accept(seq: Sequence, logits: Float32Array, events: StepEvent[], grammar: MaskState | Error | null = null): void {
    if (grammar instanceof Error) {
      this.leave(seq);
      events.push({ seq, finish: 'abort', matchedStop: null, error: `the output's grammar failed: ${grammar.message}` });
      return;
    }
    if (grammar?.terminated) {
      // The grammar ended on a stop token the sampler did not count as one (ignore_eos).
      this.leave(seq);
      events.push({ seq, finish: 'stop', matchedStop: null });
      return;
    }
    const tok = sampleToken(logits, seq.sampler, this.scratch, grammar?.mask);
    seq.sampler.record(tok.tokenId);
    seq.output.push(tok.tokenId);
    seq.keys.push(tok.tokenId);
    seq.pending.push(tok);
    const p = seq.sampler.params;
    let finish: FinishReason | null = null;
    let matchedStop: number | null = null;
    const canStop = seq.output.length >= p.minNewTokens;
    if (canStop && (seq.sampler.eosIds.includes(tok.tokenId) || p.stopTokenIds.includes(tok.tokenId))) {
      finish = 'stop';
      matchedStop = tok.tokenId;
    } else if (seq.output.length >= p.maxNewTokens || seq.totalLen >= this.opts.contextLength) {
      finish = 'length';
    }
    if (finish) this.leave(seq);
    else if (grammar) seq.grammarMask = this.askMask(seq, tok.tokenId);
    events.push({ seq, finish, matchedStop });
  }
}
