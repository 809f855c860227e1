import { statSync } from 'node:fs';
import type { QuantMode } from '../../engine/memoryPlan.js';
import type { WeightStore } from '../weightStore.js';
import type { QuantPolicy, SessionQuant } from '../sessionWeights.js';
import type { NBits } from './nbits.js';
import { CheckpointFile, QuantFile, irisCacheDir } from './quantFile.js';

/**
 * Block sizes of weights Iris quantizes itself (one float32 scale per block). int8 in blocks
 * of 128: as accurate as 32 for 8 bits, and measured faster with less memory (the kernel keeps
 * a sum per block). int4 in blocks of 32, where a smaller block keeps the error down.
 */
export const QUANT_BLOCK_SIZES: Record<NBits, number> = { 8: 128, 4: 32 };

/**
 * What each part of a vision-language model holds in a quantization mode. The language
 * model's linears take the mode's width; its output projection and embedding table stay
 * at int8 (their errors reach every logit, and the table is only read row by row); the
 * vision tower's linears are int8 in both modes (it runs like a prefill, compute-bound,
 * where int4 saves no time).
 */
export function quantPolicies(mode: QuantMode): { text: QuantPolicy | null; vision: QuantPolicy | null } {
  if (mode === 'none') return { text: null, vision: null };
  const linearBits = mode === 'int4' ? 4 : 8;
  return {
    text: { linearBits, headBits: 8, embedBits: 8, blockSizes: QUANT_BLOCK_SIZES },
    vision: { linearBits: 8, headBits: 8, embedBits: null, blockSizes: QUANT_BLOCK_SIZES },
  };
}

/**
 * A session's quantization, with its cache file keyed by the checkpoint files (path, size,
 * time) and the policy; null for a float32 session of a float checkpoint unless `rearranged`
 * (the graph reads weights rearranged for a kernel, which the file holds too).
 */
export function sessionQuant(store: WeightStore, session: string, policy: QuantPolicy | null, accuracyLevel: 0 | 4 = 4, cacheDir = irisCacheDir(), rearranged = false): SessionQuant {
  if (!policy && !store.scheme && !rearranged) return null;
  const files = store.files.map((f): CheckpointFile => {
    const st = statSync(f);
    return [f, st.size, st.mtimeMs];
  });
  return { policy, accuracyLevel, file: new QuantFile(`${cacheDir}/quantized`, { files, session, policy }) };
}
