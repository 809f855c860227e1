import { z } from 'zod';
import { openAiSamplingFields } from './validate.js';

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
    ...openAiSamplingFields,
    messages: z.array(message).min(1, 'messages must not be empty'),
    max_tokens: z.number().int().positive().nullish(),
    max_completion_tokens: z.number().int().positive().nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(20).nullish(),
    chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
    /** vLLM's name: settings of the model's image processor for this request (e.g. MiniCPM-V's max_slice_nums). */
    mm_processor_kwargs: z.record(z.string(), z.unknown()).nullish(),
    continue_final_message: z.boolean().nullish(),
    /** Checked by validateTools, whose errors name the field. */
    tools: z.unknown().optional(),
    tool_choice: z.unknown().optional(),
    parallel_tool_calls: z.unknown().optional(),
  })
  .loose();

export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** OpenAI fields Iris does not honour yet; sending them gets a 400 that says so. */
export const CHAT_UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  functions: (v) => Array.isArray(v) && v.length > 0,
  function_call: (v) => v !== 'none' && v !== 'auto',
  logit_bias: (v) => typeof v === 'object' && Object.keys(v as object).length > 0,
  audio: () => true,
  modalities: (v) => !(Array.isArray(v) && v.every((m) => m === 'text')),
  prediction: () => true,
};
