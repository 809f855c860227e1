import { SamplingParams } from '../../engine/samplingParams.js';

/** The sampling fields shared by OpenAI chat/completions and SGLang's sampling_params. */
export interface WireSampling {
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  max_new_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
  min_tokens?: number | null;
  min_new_tokens?: number | null;
  stop?: string | string[] | null;
  stop_token_ids?: number[] | null;
  ignore_eos?: boolean | null;
  skip_special_tokens?: boolean | null;
}

const v = <T>(x: T | null | undefined): T | undefined => (x === null ? undefined : x);

/** Maps wire names onto the engine's; unset fields stay unset so model defaults apply. */
export function toSampling(w: WireSampling, topLogprobs: number | null): Partial<SamplingParams> {
  const stop = w.stop === undefined || w.stop === null ? undefined : typeof w.stop === 'string' ? [w.stop] : w.stop;
  return {
    maxNewTokens: v(w.max_completion_tokens) ?? v(w.max_tokens) ?? v(w.max_new_tokens),
    temperature: v(w.temperature),
    topP: v(w.top_p),
    topK: v(w.top_k),
    minP: v(w.min_p),
    seed: v(w.seed),
    presencePenalty: v(w.presence_penalty),
    frequencyPenalty: v(w.frequency_penalty),
    repetitionPenalty: v(w.repetition_penalty),
    minNewTokens: v(w.min_tokens) ?? v(w.min_new_tokens),
    stop,
    stopTokenIds: v(w.stop_token_ids),
    ignoreEos: v(w.ignore_eos),
    skipSpecialTokens: v(w.skip_special_tokens),
    topLogprobs,
  };
}
