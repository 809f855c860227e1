import { Worker } from 'node:worker_threads';
import { InvalidRequestError } from '../errors.js';
import { Constraint, constraintField } from './constraint.js';

export type GrammarRequest =
  | { op: 'compile'; rid: number; constraint: Constraint }
  | { op: 'open'; rid: number; seq: string; constraint: Constraint; stopIds: number[] }
  | { op: 'next'; rid: number; seq: string; token: number }
  | { op: 'close'; seq: string };

export type GrammarReply = { rid: number; ok: true; terminated?: boolean; mask?: Int32Array } | { rid: number; ok: false; error: string };

/** A token mask (bit i of word i >> 5: token i allowed), or the grammar is complete. */
export type MaskState = { terminated: true } | { terminated: false; mask: Int32Array };

/**
 * The engine's handle on the grammar thread. Started on the first constrained request, so an
 * engine that never sees one never loads xgrammar.
 */
export class GrammarService {
  private rid = 0;
  /** Why the thread stopped (e.g. an unreadable tokenizer.json): every later call fails with it. */
  private dead: Error | null = null;
  private readonly waiting = new Map<number, { resolve: (r: GrammarReply & { ok: true }) => void; reject: (e: Error) => void }>();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (r: GrammarReply) => {
      const w = this.waiting.get(r.rid);
      if (!w) return;
      this.waiting.delete(r.rid);
      if (this.waiting.size === 0) worker.unref();
      if (r.ok) w.resolve(r);
      else w.reject(new Error(r.error));
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', (code) => this.failAll(new Error(`the grammar thread exited (code ${code})`)));
    // The thread keeps the process alive only while an answer is awaited.
    worker.unref();
  }

  /** The thread reads the model folder's tokenizer.json itself; `vocabSize`: the logits' size. */
  static start(modelDir: string, vocabSize: number): GrammarService {
    return new GrammarService(new Worker(new URL('./grammarWorker.js', import.meta.url), { workerData: { modelDir, vocabSize } }));
  }

  private failAll(e: Error): void {
    this.dead ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
    this.worker.unref();
  }

  private call(m: Record<string, unknown> & { op: GrammarRequest['op'] }): Promise<GrammarReply & { ok: true }> {
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      if (this.dead) return reject(this.dead);
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(rid, { resolve, reject });
      this.worker.postMessage({ ...m, rid });
    });
  }

  /** Compiles (or finds cached) a constraint; a bad one is the client's error, named by its field. */
  async compile(c: Constraint): Promise<void> {
    try {
      await this.call({ op: 'compile', constraint: c });
    } catch (e) {
      const field = constraintField(c);
      throw new InvalidRequestError(`${field}: ${(e as Error).message}`, field);
    }
  }

  /** Starts a sequence's grammar state; `stopIds` end the grammar when it is complete. */
  async open(seq: string, c: Constraint, stopIds: number[]): Promise<void> {
    await this.call({ op: 'open', seq, constraint: c, stopIds });
  }

  /** Feeds the sequence's last token (-1: none yet) and gets the mask for its next one. */
  async next(seq: string, token: number): Promise<MaskState> {
    const r = await this.call({ op: 'next', seq, token });
    return r.terminated ? { terminated: true } : { terminated: false, mask: r.mask! };
  }

  close(seq: string): void {
    this.worker.postMessage({ op: 'close', seq } satisfies GrammarRequest);
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}
