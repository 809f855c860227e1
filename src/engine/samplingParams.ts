import type { Constraint } from '../structured/constraint.js';
import { InvalidRequestError } from '../errors.js';

/** How to pick each next token; OpenAI names plus SGLang's extras. */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number;
  topP: number;
  /** -1 or 0 disables. */
  topK: number;
  minP: number;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  seed?: number;
  maxNewTokens: number;
  minNewTokens: number;
  stop: string[];
  stopTokenIds: number[];
  /** Stop on the model's eos ids (SGLang's ignore_eos=false). */
  ignoreEos: boolean;
  skipSpecialTokens: boolean;
  /** Return the chosen token's logprob and this many alternatives per step; null: none. */
  topLogprobs: number | null;
  /** A grammar the output must follow (JSON schema, regex, EBNF...); null: free text. */
  constraint: Constraint | null;
}

export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: -1,
  minP: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  maxNewTokens: 128,
  minNewTokens: 0,
  stop: [],
  stopTokenIds: [],
  ignoreEos: false,
  skipSpecialTokens: true,
  topLogprobs: null,
  constraint: null,
};

/** Checks ranges and names the offending field. */
export function validateSampling(p: SamplingParams): void {
  const bad = (field: string, why: string): never => {
    throw new InvalidRequestError(`${field} ${why}`, field);
  };
  if (!(p.temperature >= 0) || p.temperature > 100) bad('temperature', `must be between 0 and 100, got ${p.temperature}`);
  if (!(p.topP > 0 && p.topP <= 1)) bad('top_p', `must be in (0, 1], got ${p.topP}`);
  if (!Number.isInteger(p.topK) || p.topK < -1) bad('top_k', `must be -1 (off) or a positive integer, got ${p.topK}`);
  if (!(p.minP >= 0 && p.minP <= 1)) bad('min_p', `must be in [0, 1], got ${p.minP}`);
  if (!(p.repetitionPenalty > 0 && p.repetitionPenalty <= 2)) bad('repetition_penalty', `must be in (0, 2], got ${p.repetitionPenalty}`);
  if (!(p.frequencyPenalty >= -2 && p.frequencyPenalty <= 2)) bad('frequency_penalty', `must be in [-2, 2], got ${p.frequencyPenalty}`);
  if (!(p.presencePenalty >= -2 && p.presencePenalty <= 2)) bad('presence_penalty', `must be in [-2, 2], got ${p.presencePenalty}`);
  if (!Number.isInteger(p.maxNewTokens) || p.maxNewTokens < 1) bad('max_tokens', `must be a positive integer, got ${p.maxNewTokens}`);
  if (!Number.isInteger(p.minNewTokens) || p.minNewTokens < 0 || p.minNewTokens > p.maxNewTokens) {
    bad('min_tokens', `must be an integer between 0 and max_tokens (${p.maxNewTokens}), got ${p.minNewTokens}`);
  }
  if (p.topLogprobs !== null && (!Number.isInteger(p.topLogprobs) || p.topLogprobs < 0 || p.topLogprobs > 20)) {
    bad('top_logprobs', `must be an integer between 0 and 20, got ${p.topLogprobs}`);
  }
  if (p.seed !== undefined && !Number.isInteger(p.seed)) bad('seed', `must be an integer, got ${p.seed}`);
  if (p.stop.length > 16) bad('stop', 'may list at most 16 strings');
}
