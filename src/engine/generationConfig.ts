import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../errors.js';

/** The model's generation_config.json: eos ids and default sampling. */
export interface GenerationConfig {
  eosTokenIds: number[];
  doSample: boolean | null;
  temperature: number | null;
  topP: number | null;
  topK: number | null;
  repetitionPenalty: number | null;
}

export function readGenerationConfig(modelDir: string): GenerationConfig {
  const path = join(modelDir, 'generation_config.json');
  const empty: GenerationConfig = { eosTokenIds: [], doSample: null, temperature: null, topP: null, topK: null, repetitionPenalty: null };
  if (!existsSync(path)) return empty;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  const numOrNull = (v: unknown) => (typeof v === 'number' ? v : null);
  const eos = j.eos_token_id;
  return {
    eosTokenIds: Array.isArray(eos) ? eos.filter((x): x is number => typeof x === 'number') : typeof eos === 'number' ? [eos] : [],
    doSample: typeof j.do_sample === 'boolean' ? j.do_sample : null,
    temperature: numOrNull(j.temperature),
    topP: numOrNull(j.top_p),
    topK: numOrNull(j.top_k),
    repetitionPenalty: numOrNull(j.repetition_penalty),
  };
}
