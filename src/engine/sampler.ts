import { Rng } from './rng.js';
import { SamplingParams } from './samplingParams.js';

export interface TokenLogprob {
  tokenId: number;
  logprob: number;
}

export interface SampledToken {
  tokenId: number;
  /** log-softmax of the raw logits at the chosen token (null when not asked). */
  logprob: number | null;
  top: TokenLogprob[] | null;
}

/** Per-sequence sampler state: the RNG and token counts for penalties. */
export class SamplerState {
  readonly rng: Rng;
  /** Output-token counts (frequency/presence penalties). */
  readonly outputCounts = new Map<number, number>();
  /** Prompt and output tokens seen (repetition penalty). */
  readonly seen = new Set<number>();
  generated = 0;

  constructor(
    readonly params: SamplingParams,
    promptIds: ArrayLike<number>,
    readonly eosIds: number[],
  ) {
    this.rng = new Rng(params.seed ?? Math.floor(Math.random() * 2 ** 32));
    if (params.repetitionPenalty !== 1) for (let i = 0; i < promptIds.length; i++) this.seen.add(promptIds[i]!);
  }

  record(token: number): void {
    this.generated++;
    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
    this.seen.add(token);
  }
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topKIndices(values: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (idx.length === k && !(v > values[idx[k - 1]!]!)) continue;
    let j = idx.length < k ? idx.length : k - 1;
    while (j > 0 && v > values[idx[j - 1]!]!) j--;
    if (idx.length < k) idx.splice(j, 0, i);
    else {
      idx.pop();
      idx.splice(j, 0, i);
    }
  }
  return idx;
}

function logSumExp(x: Float32Array): { max: number; lse: number } {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return { max, lse: max + Math.log(sum) };
}

/** Sets to -Infinity every logit whose token the mask (bit i of word i >> 5) does not allow. */
function applyMask(logits: Float32Array, mask: Int32Array): void {
  const V = logits.length;
  for (let w = 0; w < mask.length; w++) {
    const bits = mask[w]!;
    if (bits === -1) continue;
    const base = w << 5;
    for (let b = 0; b < 32 && base + b < V; b++) if (!(bits & (1 << b))) logits[base + b] = -Infinity;
  }
}

function anyFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i]! > -Infinity) return true;
  return false;
}

/**
 * Picks the next token from one row of logits, among the tokens `mask` allows when the output
 * follows a grammar. Logprobs come from the raw logits (before penalties, temperature and the
 * grammar's mask), as the reference reports them.
 */
export function sampleToken(raw: Float32Array, st: SamplerState, scratch: Float32Array, mask?: Int32Array): SampledToken {
  const p = st.params;
  const logits = scratch;
  logits.set(raw);

  if (p.repetitionPenalty !== 1) {
    for (const t of st.seen) {
      const v = logits[t]!;
      logits[t] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
    }
  }
  if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
    for (const [t, c] of st.outputCounts) logits[t] = logits[t]! - p.frequencyPenalty * c - p.presencePenalty;
  }
  if (st.generated < p.minNewTokens) {
    for (const e of st.eosIds) if (e < logits.length) logits[e] = -Infinity;
    for (const e of p.stopTokenIds) if (e < logits.length) logits[e] = -Infinity;
  }
  if (mask) {
    applyMask(logits, mask);
    // A complete grammar allows only its stop tokens, which min_tokens holds back: the grammar wins.
    if (!anyFinite(logits)) {
      logits.set(raw);
      applyMask(logits, mask);
    }
  }

  let tokenId: number;
  if (p.temperature === 0 || p.topK === 1) {
    tokenId = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[tokenId]!) tokenId = i;
  } else {
    tokenId = sampleFiltered(logits, p, st.rng);
  }

  let logprob: number | null = null;
  let top: TokenLogprob[] | null = null;
  if (p.topLogprobs !== null) {
    const { lse } = logSumExp(raw);
    logprob = raw[tokenId]! - lse;
    top = p.topLogprobs > 0 ? topKIndices(raw, p.topLogprobs).map((i) => ({ tokenId: i, logprob: raw[i]! - lse })) : [];
  }
  return { tokenId, logprob, top };
}

/** Temperature, then top-k, top-p and min-p filtering, then a draw. */
function sampleFiltered(logits: Float32Array, p: SamplingParams, rng: Rng): number {
  const V = logits.length;
  const invT = 1 / p.temperature;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!;
  const k = p.topK > 0 ? Math.min(p.topK, V) : V;
  if (k === V && p.topP >= 1 && p.minP <= 0) {
    // Plain temperature sampling: one pass over the vocabulary, no sort.
    let total = 0;
    for (let i = 0; i < V; i++) total += Math.exp((logits[i]! - max) * invT);
    let r = rng.next() * total;
    for (let i = 0; i < V; i++) {
      r -= Math.exp((logits[i]! - max) * invT);
      if (r < 0) return i;
    }
    return V - 1;
  }
  // Candidates: top-k if set, else every token within e^-20 of the likeliest (the rest
  // cannot change a top-p/min-p cut), sorted by probability.
  let cand: number[];
  if (k < V) cand = topKIndices(logits, k);
  else {
    cand = [];
    for (let i = 0; i < V; i++) if ((logits[i]! - max) * invT > -20) cand.push(i);
    cand.sort((a, b) => logits[b]! - logits[a]! || a - b);
  }
  const probs = cand.map((i) => Math.exp((logits[i]! - max) * invT));
  let total = probs.reduce((a, b) => a + b, 0);
  let n = probs.length;
  if (p.topP < 1) {
    let acc = 0;
    for (let j = 0; j < probs.length; j++) {
      acc += probs[j]! / total;
      if (acc >= p.topP) {
        n = j + 1;
        break;
      }
    }
  }
  if (p.minP > 0) {
    const floor = (probs[0]! / total) * p.minP;
    let m = 0;
    while (m < n && probs[m]! / total >= floor) m++;
    n = Math.max(1, m);
  }
  total = 0;
  for (let j = 0; j < n; j++) total += probs[j]!;
  let r = rng.next() * total;
  for (let j = 0; j < n; j++) {
    r -= probs[j]!;
    if (r < 0) return cand[j]!;
  }
  return cand[n - 1]!;
}
