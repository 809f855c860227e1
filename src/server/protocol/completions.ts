import { z } from 'zod';
import { openAiSamplingFields, stopField } from './validate.js';

/** POST /v1/completions (legacy text completions). */
export const completionRequestSchema = z
  .object({
    ...openAiSamplingFields,
    prompt: z.union([z.string(), z.array(z.string()).min(1), z.array(z.number().int().min(0)).min(1), z.array(z.array(z.number().int().min(0)).min(1)).min(1)]),
    max_tokens: z.number().int().positive().nullish(),
    logprobs: z.number().int().min(0).max(20).nullish(),
  })
  .loose();

export const COMPLETION_UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  echo: (v) => v === true,
  suffix: (v) => typeof v === 'string' && v.length > 0,
  best_of: (v) => typeof v === 'number' && v > 1,
  logit_bias: (v) => typeof v === 'object' && Object.keys(v as object).length > 0,
};

/** SGLang's native POST /generate. */
export const generateRequestSchema = z
  .object({
    text: z.union([z.string(), z.array(z.string()).length(1)]).nullish(),
    input_ids: z.union([z.array(z.number().int().min(0)).min(1), z.array(z.array(z.number().int().min(0)).min(1)).length(1)]).nullish(),
    image_data: z.union([z.string(), z.array(z.union([z.string(), z.object({ url: z.string() }).loose()]))]).nullish(),
    sampling_params: z
      .object({
        max_new_tokens: z.number().int().positive().nullish(),
        min_new_tokens: z.number().int().min(0).nullish(),
        temperature: z.number().min(0).nullish(),
        top_p: z.number().gt(0).max(1).nullish(),
        top_k: z.number().int().min(-1).nullish(),
        min_p: z.number().min(0).max(1).nullish(),
        frequency_penalty: z.number().min(-2).max(2).nullish(),
        presence_penalty: z.number().min(-2).max(2).nullish(),
        repetition_penalty: z.number().gt(0).max(2).nullish(),
        stop: stopField,
        stop_token_ids: z.array(z.number().int().min(0)).nullish(),
        ignore_eos: z.boolean().nullish(),
        skip_special_tokens: z.boolean().nullish(),
        seed: z.number().int().nullish(),
        n: z.number().int().min(1).max(1).nullish(),
        json_schema: z.unknown().optional(),
        regex: z.unknown().optional(),
        ebnf: z.unknown().optional(),
      })
      // A sampling parameter Iris does not know (SGLang's structural_tag, logit_bias, no_stop_trim,
      // custom_params, ... or a typo) is refused rather than silently ignored.
      .strict()
      .nullish(),
    stream: z.boolean().nullish(),
    return_logprob: z.boolean().nullish(),
    top_logprobs_num: z.number().int().min(0).max(20).nullish(),
    rid: z.string().nullish(),
  })
  .loose();
