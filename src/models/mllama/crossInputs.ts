import { InvalidRequestError } from '../../errors.js';
import type { GraphSession } from '../../runtime/session.js';
import { TEXT_INPUTS } from '../decoder.js';
import type { CrossRows } from '../decoderRunner.js';
import type { ForwardSeq } from '../model.js';
import { MllamaConfig } from './config.js';
import { mllamaTileTokens } from './vision.js';

const MASK_MIN = -3.4028234663852886e38;

/**
 * MllamaProcessor's cross-attention token ranges as bitmasks: a token sees the latest image
 * before it, or the latest run of consecutive image tokens; tokens before the first image see
 * none (0). At most 31 images.
 */
export function mllamaVisibility(ids: ArrayLike<number>, images: Array<{ start: number }>): Int32Array {
  if (images.length > 31) throw new InvalidRequestError(`Llama 3.2 Vision takes at most 31 images per request, got ${images.length}`, 'messages');
  const vis = new Int32Array(ids.length);
  const starts = images.map((m) => m.start);
  // Range k: [start_k, start_{k+1}), the last to the end; consecutive image tokens share the next range's end.
  const ends = starts.map((s, k) => (k + 1 < starts.length ? starts[k + 1]! : ids.length));
  for (let k = starts.length - 2; k >= 0; k--) if (ends[k] === starts[k]! + 1) ends[k] = ends[k + 1]!;
  starts.forEach((s, k) => {
    for (let t = s; t < ends[k]!; t++) vis[t]! |= 1 << k;
  });
  return vis;
}

/**
 * The cross-attention layers' inputs for a batch: per batch row, the K/V of its sequences'
 * images side by side (a packed row holds several sequences'), the additive mask (a token
 * sees the real tiles of the images it sees; one that sees none attends to all its sequence's
 * image tokens, the reference's zeroed mask row, and its MLP branch is off), and rows of
 * sequences without images switched off (the reference skips the layers for them).
 */
export function mllamaCrossFeeds(cfg: MllamaConfig) {
  const { P } = mllamaTileTokens(cfg);
  const TP = cfg.vision.maxNumTiles * P;
  const KVD = cfg.text.numKvHeads * cfg.text.headDim;
  const layers = cfg.crossLayers;
  return (seqs: ForwardSeq[], r: CrossRows): Parameters<GraphSession['run']>[0] => {
    const { B, S, rowOf, lens, packed } = r;
    const cols = seqs.map((s) => (s.imageStates?.length ?? 0) * TP);
    const offsets: number[] = [];
    let acc = 0;
    for (const c of cols) {
      offsets.push(packed ? acc : 0);
      acc += c;
    }
    const N = Math.max(1, packed ? acc : Math.max(...cols));
    // One sequence with one image (the common case): its K/V are fed where they are, not copied.
    const only = B === 1 && seqs.length === 1 && seqs[0]!.imageStates?.length === 1 ? seqs[0]!.imageStates[0]!.state : null;
    const view = (c: number, kv: 0 | 1) => only!.subarray((c * 2 + kv) * TP * KVD, (c * 2 + kv + 1) * TP * KVD);
    const k = layers.map((_, c) => (only ? view(c, 0) : new Float32Array(B * N * KVD)));
    const v = layers.map((_, c) => (only ? view(c, 1) : new Float32Array(B * N * KVD)));
    const mask = new Float32Array(B * S * N).fill(MASK_MIN);
    const attnRows = new Float32Array(B * S);
    const mlpRows = new Float32Array(B * S);
    seqs.forEach((seq, q) => {
      const b = packed ? 0 : q;
      const off = offsets[q]!;
      const states = seq.imageStates ?? [];
      if (!only) states.forEach(({ state }, i) => {
        layers.forEach((_, c) => {
          const base = (b * N + off + i * TP) * KVD;
          k[c]!.set(state.subarray((c * 2) * TP * KVD, (c * 2 + 1) * TP * KVD), base);
          v[c]!.set(state.subarray((c * 2 + 1) * TP * KVD, (c * 2 + 2) * TP * KVD), base);
        });
      });
      for (let j = 0; j < lens[q]!; j++) {
        const row = rowOf[q]! + j;
        const m = row * N;
        if (states.length === 0) {
          mask[m] = 0;
          continue;
        }
        attnRows[row] = 1;
        const seen = seq.imageVisibility![j]!;
        if (seen === 0) {
          mask.fill(0, m + off, m + off + cols[q]!);
          continue;
        }
        mlpRows[row] = 1;
        states.forEach(({ grid }, i) => {
          if (!(seen & (1 << i))) return;
          mask.fill(0, m + off + i * TP, m + off + i * TP + grid[1]! * P);
        });
      }
    });
    const I = TEXT_INPUTS;
    const feeds: Parameters<GraphSession['run']>[0] = {
      [I.crossMask]: { data: mask, dims: [B, 1, 1, S, N] },
      [I.crossAttnRows]: { data: attnRows, dims: [B, S, 1] },
      [I.crossMlpRows]: { data: mlpRows, dims: [B, S, 1] },
    };
    layers.forEach((l, c) => {
      feeds[I.crossK(l)] = { data: k[c]!, dims: [B, N, KVD] };
      feeds[I.crossV(l)] = { data: v[c]!, dims: [B, N, KVD] };
    });
    return feeds;
  };
}
