import { KvPagePool } from '../engine/kvPool.js';
import { GraphSession } from '../runtime/session.js';
import { layoutBatch } from './batchLayout.js';
import { TextConfig } from './config.js';
import { TEXT_INPUTS } from './decoder.js';
import { ForwardSeq } from './model.js';
import { localInvFreq, ropeAxes, ropeTableScale, textInvFreq, writeRopeRows } from './rope.js';

/** Where each sequence's new tokens sit in the batch. */
export interface CrossRows {
  B: number;
  S: number;
  rowOf: number[];
  lens: number[];
  packed: boolean;
}

/**
 * Runs a decoder graph (decoder.ts) over sequences' new tokens: lays out the batch, writes
 * the rotary rows from each token's positions, feeds the KV pages, writes the new K/V back
 * into the pool, and returns the last-token logits [sequences, vocab]. The same for every
 * family whose decoder is built by buildDecoderGraph.
 */
export class DecoderRunner {
  private readonly invFreq: Float32Array;
  /** Factor on the cos/sin tables (yarn's mscale ratio). */
  private readonly tableScale: number;
  /** The sliding-window layers' own rotary frequencies, when they differ. */
  private readonly localFreq: Float32Array | null;
  private readonly axes: Uint8Array;
  /** The sliding window of the windowed layers (one size per model), or null. */
  private readonly window: number | null;

  /**
   * `crossFeeds`: the inputs of a family's cross-attention layers for these sequences, laid
   * out in the batch's rows (B rows of S tokens; sequence k's first token at row rowOf[k]).
   */
  constructor(
    private readonly session: GraphSession,
    private readonly cfg: TextConfig,
    readonly pageSize: number,
    private readonly crossFeeds?: (seqs: ForwardSeq[], rows: CrossRows) => Parameters<GraphSession['run']>[0],
  ) {
    this.invFreq = textInvFreq(cfg);
    this.tableScale = ropeTableScale(cfg);
    this.localFreq = cfg.localRopeTheta === undefined ? null : localInvFreq(cfg);
    this.axes = ropeAxes(cfg);
    const windows = new Set((cfg.layerWindows ?? []).filter((w): w is number => w !== null));
    if (windows.size > 1) throw new Error('one sliding window size per model is supported');
    this.window = windows.size ? [...windows][0]! : null;
  }

  async forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts: { packed?: boolean } = {}): Promise<Float32Array> {
    const tc = this.cfg;
    const Hd = tc.hiddenSize;
    const { B, S, P, T, ids, select, blockTable, mask, ring, lastIndex, rowOf, lens } = layoutBatch(seqs, this.pageSize, Boolean(opts.packed), this.window);
    const tables = (freq: Float32Array, scale: number) => {
      const cos = new Float32Array(B * S * freq.length);
      const sin = new Float32Array(B * S * freq.length);
      seqs.forEach((seq, k) => writeRopeRows(freq, this.axes, (t, a) => seq.positions[a * lens[k]! + t]!, lens[k]!, cos, sin, rowOf[k]!, scale));
      return { cos, sin };
    };
    const { cos, sin } = tables(this.invFreq, this.tableScale);

    const I = TEXT_INPUTS;
    const extra = extraEmbeds.length > 0 ? extraEmbeds : new Float32Array(Hd);
    const feeds: Parameters<GraphSession['run']>[0] = {
      [I.ids]: { data: ids, dims: [B, S] },
      [I.extraEmbeds]: { data: extra, dims: [extra.length / Hd, Hd] },
      [I.embedSelect]: { data: select, dims: [B * S] },
      [I.cos]: { data: cos, dims: [B * S, this.invFreq.length] },
      [I.sin]: { data: sin, dims: [B * S, this.invFreq.length] },
      [I.blockTable]: { data: blockTable, dims: [B, P] },
      [I.mask]: { data: mask, dims: [B, 1, 1, S, T] },
      [I.lastIndex]: { data: lastIndex, dims: [seqs.length] },
    };
    if (this.localFreq) {
      const local = tables(this.localFreq, 1);
      feeds[I.cosLocal] = { data: local.cos, dims: [B * S, this.localFreq.length] };
      feeds[I.sinLocal] = { data: local.sin, dims: [B * S, this.localFreq.length] };
    }
    pool.layers.forEach((l, i) => {
      if (l.kind === 'cross') return;
      const pages = l.kind === 'window' ? pool.windowPages : pool.numPages;
      feeds[I.kCache(i)] = { data: pool.k[i]!, dims: [pages, pool.pageSize, l.width] };
      if (l.kind !== 'latent') feeds[I.vCache(i)] = { data: pool.v[i]!, dims: [pages, pool.pageSize, l.width] };
    });
    if (ring) {
      feeds[I.windowBlockTable] = { data: ring.table, dims: [B, ring.P] };
      feeds[I.maskWindow] = { data: ring.mask, dims: [B, 1, 1, S, ring.P * this.pageSize + S] };
    }
    if (this.crossFeeds) Object.assign(feeds, this.crossFeeds(seqs, { B, S, rowOf, lens, packed: B === 1 && seqs.length > 1 }));
    const out = await this.session.run(feeds);
    for (let l = 0; l < pool.numLayers; l++) {
      if (pool.layers[l]!.kind === 'cross') continue;
      const kNew = out[I.kNew(l)]!.data;
      const vNew = pool.layers[l]!.kind === 'latent' ? kNew : out[I.vNew(l)]!.data;
      seqs.forEach((seq, k) => pool.write(l, kNew, vNew, rowOf[k]!, lens[k]!, seq, seq.pastLen));
    }
    return out[I.logits]!.data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
