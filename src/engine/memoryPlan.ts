import { freemem, totalmem } from 'node:os';
import { ModelLoadError } from '../errors.js';

/** How the weights of linear layers are held: as float32, or blockwise 8- or 4-bit. */
export type QuantMode = 'none' | 'int8' | 'int4';
export const QUANT_MODES: QuantMode[] = ['none', 'int8', 'int4'];

/** Memory the runtime needs beside weights and KV: activations (a long prefill, the vision tower), buffers; measured 1.2-2.2 GB above the weights once a 2B or 7B model has run. */
export const RUNTIME_OVERHEAD_BYTES = 2.5 * 2 ** 30;
/** Peak of a load relative to the weights it leaves resident (measured: 1.16-1.17). */
export const LOAD_PEAK_FACTOR = 1.17;
/** Share of the available memory Iris plans to use when --mem-fraction-static is not given. */
export const DEFAULT_MEMORY_FRACTION = 0.9;

export interface MemoryFacts {
  /** Memory the process may still use: MemAvailable, or the cgroup's limit if lower. */
  availableBytes: number;
  totalBytes: number;
}

export function memoryFacts(): MemoryFacts {
  const constrained = process.constrainedMemory?.() ?? 0;
  const total = constrained > 0 && constrained < totalmem() ? constrained : totalmem();
  const used = total === totalmem() ? total - freemem() : process.memoryUsage().rss;
  return { availableBytes: Math.max(0, total - used), totalBytes: total };
}

export interface FitRequest {
  /** Resident weight bytes per mode (modes a checkpoint cannot take are absent). */
  residentBytes: Partial<Record<QuantMode, number>>;
  kvBytesPerToken: number;
  /** Sliding-window layers: bytes per token of their rings, and the most tokens the rings hold together. */
  windowBytesPerToken?: number;
  windowCapTokens?: number;
  contextLength: number;
  /** `auto` picks the first mode that fits: none, then int8, then int4. */
  requested: QuantMode | 'auto';
  maxTotalTokens?: number;
  memFractionStatic?: number;
  facts: MemoryFacts;
}

export interface MemoryPlan {
  mode: QuantMode;
  /** KV cache size in tokens. */
  kvTokens: number;
  /** One line saying what was chosen and why (printed at start-up). */
  summary: string;
  budgetBytes: number;
  needBytes: number;
}

const GiB = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/**
 * Chooses how to hold the weights and how large the KV cache is, so that the model
 * loads and serves within the machine's memory: the weights (at the load's peak),
 * a KV cache for at least one full context (or --max-total-tokens), and the runtime.
 */
export function planMemory(r: FitRequest): MemoryPlan {
  const fraction = r.memFractionStatic ?? DEFAULT_MEMORY_FRACTION;
  const budget = r.facts.availableBytes * fraction;
  const kvMinTokens = r.maxTotalTokens ?? Math.min(r.contextLength, 32768);
  // KV bytes for a cache of `t` tokens: every layer that keeps all tokens, and the window layers' rings (at most their cap).
  const cap = r.windowCapTokens ?? 0;
  const win = r.windowBytesPerToken ?? 0;
  const kvBytes = (t: number) => t * r.kvBytesPerToken + Math.min(t, cap) * win;
  const kvTokensFor = (bytes: number) => {
    const both = r.kvBytesPerToken + win;
    if (bytes <= cap * both) return Math.floor(bytes / both);
    return r.kvBytesPerToken > 0 ? Math.floor(cap + (bytes - cap * both) / r.kvBytesPerToken) : Number.MAX_SAFE_INTEGER;
  };
  const need = (mode: QuantMode) => {
    const w = r.residentBytes[mode]!;
    return Math.max(w * LOAD_PEAK_FACTOR, w + kvBytes(kvMinTokens) + RUNTIME_OVERHEAD_BYTES);
  };
  const candidates = r.requested === 'auto' ? QUANT_MODES.filter((m) => r.residentBytes[m] !== undefined) : [r.requested];
  const mode = candidates.find((m) => r.residentBytes[m] !== undefined && need(m) <= budget);
  if (!mode) {
    const m = candidates[candidates.length - 1]!;
    if (r.residentBytes[m] === undefined) throw new ModelLoadError(`--quantization ${m} does not apply to this checkpoint`);
    const w = r.residentBytes[m]!;
    const hint = r.requested === 'none' ? '; try --quantization int8 or int4' : r.requested === 'int8' ? '; try --quantization int4' : '';
    throw new ModelLoadError(
      `the model does not fit in memory${r.requested === 'auto' ? ' even with int4 weights' : ` with --quantization ${m}`}: ` +
        `it needs ${GiB(need(m))} (weights ${GiB(w)}, KV cache for ${kvMinTokens} tokens ${GiB(kvBytes(kvMinTokens))}, ` +
        `runtime ${GiB(RUNTIME_OVERHEAD_BYTES)}) and ${GiB(budget)} is available (${Math.round(fraction * 100)}% of ${GiB(r.facts.availableBytes)} free)${hint}`,
    );
  }
  const weights = r.residentBytes[mode]!;
  const spare = budget - weights - RUNTIME_OVERHEAD_BYTES;
  let kvTokens: number;
  if (r.maxTotalTokens) kvTokens = r.maxTotalTokens;
  else if (r.memFractionStatic) kvTokens = kvTokensFor(spare);
  // By default a generous cache, leaving room for the rest of the machine.
  else kvTokens = Math.max(kvMinTokens, Math.min(kvTokensFor(0.5 * spare), 4 * r.contextLength, 65536));
  const why =
    mode === 'none'
      ? 'float32 weights'
      : r.requested === 'auto'
        ? `${mode} weights, chosen because ${QUANT_MODES.slice(0, QUANT_MODES.indexOf(mode)).filter((m) => r.residentBytes[m] !== undefined).map((m) => (m === 'none' ? 'float32' : m)).join(' and ')} would not fit`
        : `${mode} weights`;
  return {
    mode,
    kvTokens,
    budgetBytes: budget,
    needBytes: need(mode),
    summary: `${why}: ${GiB(weights)} of weights, KV cache ${kvTokens} tokens (${GiB(kvBytes(kvTokens))}${cap > 0 ? `, sliding-window layers keeping ${Math.min(cap, kvTokens)} of them` : ''}), ${GiB(budget)} available`,
  };
}
