import { z } from 'zod';
import { InvalidRequestError } from '../../errors.js';

/** Parses a body with a zod schema; the first problem becomes a 400 naming the field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError('the request body must be a JSON object');
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = mostSpecific(r.error.issues[0]!);
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
  throw new InvalidRequestError(`${path || 'body'}: ${issue.message}`, path || null);
}

type Issue = z.core.$ZodIssue;

/**
 * A union's "Invalid input" hides why each option failed; report the failure
 * that got deepest into the value instead (e.g. the bad field of a content part).
 */
function mostSpecific(issue: Issue): { path: PropertyKey[]; message: string } {
  if (issue.code !== 'invalid_union' || !('errors' in issue) || issue.errors.length === 0) return issue;
  let best: { path: PropertyKey[]; message: string } | null = null;
  for (const option of issue.errors) {
    for (const inner of option) {
      const cand = mostSpecific(inner);
      if (!best || cand.path.length > best.path.length) best = cand;
    }
  }
  return best && best.path.length > 0 ? { path: [...issue.path, ...best.path], message: best.message } : issue;
}

/** Fields OpenAI defines that Iris does not implement yet: refused rather than ignored. */
export function refuseUnsupported(body: Record<string, unknown>, checks: Record<string, (v: unknown) => boolean>): void {
  for (const [field, isUsed] of Object.entries(checks)) {
    const v = body[field];
    if (v !== undefined && v !== null && isUsed(v)) {
      throw new InvalidRequestError(`${field} is not supported by this server yet`, field);
    }
  }
}

export const stopField = z.union([z.string(), z.array(z.string()).max(16)]).nullish();

/** Sampling fields shared by /v1/chat/completions and /v1/completions (OpenAI's plus SGLang's extras). */
export const openAiSamplingFields = {
  model: z.string().optional(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stop: stopField,
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
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
};
