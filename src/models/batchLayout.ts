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
  /** The mask of sliding-window layers (each token sees the `window` tokens ending at itself), when asked for. */
  maskWindow: Float32Array | null;
  lastIndex: BigInt64Array;
  /** Each sequence's first token row (in B * S rows). */
  rowOf: number[];
  /** New tokens per sequence. */
  lens: number[];
}

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

  const ids = new BigInt64Array(B * S);
  const select = new BigInt64Array(B * S);
  const blockTable = new BigInt64Array(B * P);
  const mask = new Float32Array(B * S * T).fill(MASK_MIN);
  const maskWindow = window === null ? null : new Float32Array(B * S * T).fill(MASK_MIN);
  const lastIndex = new BigInt64Array(K);
  const rowOf = new Array<number>(K);

  let tokenOff = 0;
  let blockOff = 0;
  seqs.forEach((seq, k) => {
    const n = lens[k]!;
    const b = packed ? 0 : k;
    const row0 = b * S + (packed ? tokenOff : 0);
    const blk0 = packed ? blockOff : 0;
    rowOf[k] = row0;
    // Rows this sequence fills; in padded mode the padding rows repeat its last real row.
    const rows = packed ? n : S;
    for (let s = 0; s < rows; s++) {
      const idx = row0 + s;
      const real = s < n;
      ids[idx] = BigInt(real ? seq.ids[s]! : 0);
      const er = real && seq.embedRows ? seq.embedRows[s]! : -1;
      select[idx] = BigInt(er >= 0 ? B * S + er : idx);
      const qs = Math.min(s, n - 1);
      const base = idx * T;
      const newBase = base + P * ps + (row0 - b * S);
      for (const [m, lo] of maskWindow ? [[mask, 0], [maskWindow, seq.pastLen + qs - window! + 1]] as const : [[mask, 0]] as const) {
        // Keys from index lo on: the past, then the new tokens up to this one.
        m.fill(0, base + blk0 * ps + Math.max(0, lo), base + blk0 * ps + seq.pastLen);
        m.fill(0, newBase + Math.max(0, lo - seq.pastLen), newBase + qs + 1);
        // Tokens of one attention group (e.g. an image's) also see the group's later tokens.
        const grp = seq.groups?.[qs] ?? 0;
        if (grp !== 0) for (let t = qs + 1; t < n; t++) if (seq.groups![t] === grp) m[newBase + t] = 0;
      }
    }
    for (let p = 0; p < pastPages[k]!; p++) blockTable[b * P + blk0 + p] = BigInt(seq.pages[p]!);
    lastIndex[k] = BigInt(row0 + n - 1);
    tokenOff += n;
    blockOff += pastPages[k]!;
  });
  return { B, S, P, T, ids, select, blockTable, mask, maskWindow, lastIndex, rowOf, lens };
}
