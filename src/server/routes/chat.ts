import { randomUUID } from 'node:crypto';
import { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../../errors.js';
import type { ChatMessage } from '../../tokenizer/chatMessages.js';
import { ServerContext } from '../context.js';
import { CHAT_UNSUPPORTED, chatRequestSchema } from '../protocol/chat.js';
import { chatCompletionJson, chatLogprobs, sumUsage, usageJson } from '../protocol/responses.js';
import { toSampling } from '../protocol/sampling.js';
import { ConstraintFields, constraintFromRequest } from '../protocol/constraints.js';
import { parseBody, refuseUnsupported } from '../protocol/validate.js';
import { RunningRequest, streamSse } from './run.js';

/** POST /v1/chat/completions */
export async function chatCompletions(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = parseBody(chatRequestSchema, request.body);
  refuseUnsupported(body as Record<string, unknown>, CHAT_UNSUPPORTED);
  if (body.top_logprobs && !body.logprobs) throw new InvalidRequestError('top_logprobs requires logprobs to be true', 'top_logprobs');
  const topN = body.logprobs ? (body.top_logprobs ?? 0) : null;
  const n = body.n ?? 1;
  // "developer" is OpenAI's newer name for the system role.
  const messages = body.messages.map((m) => (m.role === 'developer' ? { ...m, role: 'system' } : m)) as ChatMessage[];

  const run = new RunningRequest(ctx, request, reply);
  try {
    const prepared = await ctx.engine.prepare({
      messages,
      sampling: { ...toSampling(body, topN), constraint: constraintFromRequest(body as ConstraintFields) },
      chatTemplateKwargs: body.chat_template_kwargs ?? undefined,
      processorKwargs: body.mm_processor_kwargs ?? undefined,
      continueFinalMessage: body.continue_final_message ?? undefined,
      signal: run.signal,
    });
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = ctx.opts.servedModelName;

    if (!body.stream) {
      const results = await run.collect(prepared, n);
      return reply.send(chatCompletionJson(id, created, model, results, topN, results[0]?.usage.cachedTokens ?? 0));
    }

    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra });
    return await streamSse(ctx, reply, async (sse) => {
      const started = new Set<number>();
      const finals = await run.streamChoices(prepared, n, (index, c) => {
        if (!started.has(index)) {
          started.add(index);
          sse.data(chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
        }
        if (c.text || (c.logprobs && c.logprobs.length > 0)) {
          sse.data(chunk([{ index, delta: { content: c.text }, logprobs: chatLogprobs(c.logprobs, topN), finish_reason: null }]));
        }
        if (c.finishReason) {
          sse.data(chunk([{ index, delta: {}, logprobs: null, finish_reason: c.finishReason, matched_stop: c.matchedStop }]));
        }
      });
      if (body.stream_options?.include_usage) {
        const usage = sumUsage(finals.map((f) => ({ usage: f.usage! })));
        sse.data(chunk([], { usage: usageJson(usage, finals[0]?.usage?.cachedTokens ?? 0) }));
      }
    });
  } finally {
    run.release();
  }
}
