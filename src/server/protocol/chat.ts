import { z } from 'zod';
import { stopField } from './validate.js';

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imageUrlPart = z.object({
  type: z.literal('image_url'),
  image_url: z.union([
    z.string(),
    z.object({ url: z.string().min(1, 'image_url.url must not be empty'), detail: z.enum(['auto', 'low', 'high']).optional() }),
  ]),
});
const contentPart = z.discriminatedUnion('type', [textPart, imageUrlPart], {
  error: (iss) => (iss.code === 'invalid_union' ? 'content parts must have type "text" or "image_url"' : undefined),
});

const message = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
    content: z.union([z.string(), z.array(contentPart)]).nullish(),
    name: z.string().optional(),
    tool_calls: z.array(z.unknown()).optional(),
    tool_call_id: z.string().optional(),
    reasoning_content: z.string().nullish(),
  })
  .loose();

/** POST /v1/chat/completions, with SGLang's extra sampling fields. Unknown fields are ignored. */
export const chatRequestSchema = z
  .object({
    model: z.string().optional(),
    messages: z.array(message).min(1, 'messages must not be empty'),
    max_tokens: z.number().int().positive().nullish(),
    max_completion_tokens: z.number().int().positive().nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    n: z.number().int().min(1).max(16).nullish(),
    stop: stopField,
    seed: z.number().int().nullish(),
    presence_penalty: z.number().min(-2).max(2).nullish(),
    frequency_penalty: z.number().min(-2).max(2).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).loose().nullish(),
    user: z.string().nullish(),
    top_k: z.number().int().min(-1).nullish(),
    min_p: z.number().min(0).max(1).nullish(),
    repetition_penalty: z.number().gt(0).max(2).nullish(),
    min_tokens: z.number().int().min(0).nullish(),
    skip_special_tokens: z.boolean().nullish(),
    stop_token_ids: z.array(z.number().int().min(0)).nullish(),
    ignore_eos: z.boolean().nullish(),
    chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
    continue_final_message: z.boolean().nullish(),
  })
  .loose();

export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** OpenAI fields Iris does not honour yet; sending them gets a 400 that says so. */
export const CHAT_UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  tools: (v) => Array.isArray(v) && v.length > 0,
  tool_choice: (v) => v !== 'none' && v !== 'auto',
  functions: (v) => Array.isArray(v) && v.length > 0,
  function_call: (v) => v !== 'none' && v !== 'auto',
  response_format: (v) => (v as { type?: string }).type !== 'text',
  logit_bias: (v) => typeof v === 'object' && Object.keys(v as object).length > 0,
  audio: () => true,
  modalities: (v) => !(Array.isArray(v) && v.every((m) => m === 'text')),
  prediction: () => true,
};
