import { ForwardSeq } from './model.js';

const MASK_MIN = -3.4028234663852886e38;

/**
 * The batch metadata of one decoder run, the same for every family: token ids, which rows
 * take an image embedding instead of a token embedding, each sequence's pages as a block
 * table, the additive attention mask over [past pages | new tokens], and the row of each
 * sequence's last token.
 *
 * Padded: one batch row per sequence (decode steps, where every sequence has one token).
 * Packed: all new tokens in one row, each attending only to its own past and its own
 * earlier tokens (prefill chunks mixed with decodes: no padding, weights read once).
 */
export interface BatchLayout {
  /** Batch rows, new-token columns, past pages per row, key columns (P * pageSize + S). */
  B: number;
  S: number;
  P: number;
  T: number;
  ids: BigInt64Array;
  /** Per token row, the row of [token embeddings; extra embeddings] it reads. */
  select: BigInt64Array;
  blockTable: BigInt64Array;
  mask: Float32Array;
  /** Window layers: each sequence's ring pages as a block table [B, P], and their mask over [ring pages | new tokens]. */
  ring: { P: number; table: BigInt64Array; mask: Float32Array } | null;
  lastIndex: BigInt64Array;
  /** Each sequence's first token row (in B * S rows). */
  rowOf: number[];
  /** New tokens per sequence. */
  lens: number[];
}

/**
 * `window`: the sliding window of the model's window layers, whose K/V sit in each sequence's
 * ring of pages; their keys are [ring pages | new tokens], and each token sees the `window`
 * tokens ending at itself.
 */
export function layoutBatch(seqs: ForwardSeq[], pageSize: number, packedRequested: boolean, window: number | null = null): BatchLayout {
  const ps = pageSize;
  const K = seqs.length;
  const packed = packedRequested && K > 1;
  const B = packed ? 1 : K;
  const lens = seqs.map((s) => s.ids.length);
  const pastPages = seqs.map((s) => Math.ceil(s.pastLen / ps));
  const S = packed ? lens.reduce((a, b) => a + b, 0) : Math.max(...lens);
  const P = Math.max(1, packed ? pastPages.reduce((a, b) => a + b, 0) : Math.max(...pastPages));
  const T = P * ps + S;
  const ringLens = seqs.map((s) => s.ring?.length ?? 0);
  const PW = Math.max(1, packed ? ringLens.reduce((a, b) => a + b, 0) : Math.max(...ringLens));
  const TW = PW * ps + S;

  const ids = new BigInt64Array(B * S);
  const select = new BigInt64Array(B * S);
  const blockTable = new BigInt64Array(B * P);
  const mask = new Float32Array(B * S * T).fill(MASK_MIN);
  const ring = window === null ? null : { P: PW, table: new BigInt64Array(B * PW), mask: new Float32Array(B * S * TW).fill(MASK_MIN) };
  const lastIndex = new BigInt64Array(K);
  const rowOf = new Array<number>(K);

  let tokenOff = 0;
  let blockOff = 0;
  let ringOff = 0;
  seqs.forEach((seq, k) => {
    const n = lens[k]!;
    const b = packed ? 0 : k;
    const row0 = b * S + (packed ? tokenOff : 0);
    const blk0 = packed ? blockOff : 0;
    const ring0 = packed ? ringOff : 0;
    const col0 = row0 - b * S;
    rowOf[k] = row0;
    // Tokens of one attention group (e.g. an image's) also see the group's later tokens.
    const sameGroupAfter = (m: Float32Array, newBase: number, qs: number) => {
      const grp = seq.groups?.[qs] ?? 0;
      if (grp !== 0) for (let t = qs + 1; t < n; t++) if (seq.groups![t] === grp) m[newBase + t] = 0;
    };
    // Rows this sequence fills; in padded mode the padding rows repeat its last real row.
    const rows = packed ? n : S;
    for (let s = 0; s < rows; s++) {
      const idx = row0 + s;
      const real = s < n;
      ids[idx] = BigInt(real ? seq.ids[s]! : 0);
      const er = real && seq.embedRows ? seq.embedRows[s]! : -1;
      select[idx] = BigInt(er >= 0 ? B * S + er : idx);
      const qs = Math.min(s, n - 1);
      // Full layers: the past, then the new tokens up to this one.
      const base = idx * T;
      const newBase = base + P * ps + col0;
      mask.fill(0, base + blk0 * ps, base + blk0 * ps + seq.pastLen);
      mask.fill(0, newBase, newBase + qs + 1);
      sameGroupAfter(mask, newBase, qs);
      if (!ring) continue;
      // Window layers: past tokens from lo on, found in the ring, then new ones from lo on.
      const lo = seq.pastLen + qs - window! + 1;
      const R = seq.ring!.length;
      const wBase = idx * TW;
      for (let t = Math.max(0, lo, seq.pastLen - R * ps); t < seq.pastLen; t++) ring.mask[wBase + (ring0 + (Math.floor(t / ps) % R)) * ps + (t % ps)] = 0;
      const wNew = wBase + PW * ps + col0;
      ring.mask.fill(0, wNew + Math.max(0, lo - seq.pastLen), wNew + qs + 1);
      sameGroupAfter(ring.mask, wNew, qs);
    }
    for (let p = 0; p < pastPages[k]!; p++) blockTable[b * P + blk0 + p] = BigInt(seq.pages[p]!);
    if (ring) seq.ring!.forEach((page, r) => (ring.table[b * PW + ring0 + r] = BigInt(page)));
    lastIndex[k] = BigInt(row0 + n - 1);
    tokenOff += n;
    blockOff += pastPages[k]!;
    ringOff += ringLens[k]!;
  });
  return { B, S, P, T, ids, select, blockTable, mask, ring, lastIndex, rowOf, lens };
}
