import { randomUUID } from 'node:crypto';
import { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../../errors.js';
import type { ChatMessage } from '../../tokenizer/chatMessages.js';
import { ServerContext } from '../context.js';
import { CHAT_UNSUPPORTED, chatRequestSchema } from '../protocol/chat.js';
import { chatCompletionJson, chatLogprobs, sumUsage, usageJson } from '../protocol/responses.js';
import { toSampling } from '../protocol/sampling.js';
import { ConstraintFields, constraintFromRequest } from '../protocol/constraints.js';
import { ToolDeltaStream, planChatTools, toolFinishReason } from '../protocol/tools.js';
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

  const tools = await planChatTools(ctx, body, messages, constraintFromRequest(body as ConstraintFields));

  const run = new RunningRequest(ctx, request, reply);
  try {
    const prepared = await ctx.engine.prepare({
      messages: tools.messages,
      tools: tools.templateTools,
      sampling: { ...toSampling(body, topN), constraint: tools.constraint },
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
      return reply.send(chatCompletionJson(id, created, model, results, topN, results[0]?.usage.cachedTokens ?? 0, tools.parser));
    }

    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra });
    return await streamSse(ctx, reply, async (sse) => {
      const started = new Set<number>();
      // With tools, each choice's text goes through the call parser: content, call starts and argument fragments.
      const parsers = new Map<number, ToolDeltaStream>();
      const parser = tools.parser;
      const finals = await run.streamChoices(prepared, n, (index, c) => {
        if (!started.has(index)) {
          started.add(index);
          sse.data(chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
          if (parser) parsers.set(index, new ToolDeltaStream(parser));
        }
        const lps = c.logprobs && c.logprobs.length > 0 ? chatLogprobs(c.logprobs, topN) : null;
        const calls = parsers.get(index);
        if (!calls) {
          if (c.text || lps) sse.data(chunk([{ index, delta: { content: c.text }, logprobs: lps, finish_reason: null }]));
        } else {
          const deltas = calls.push(c.text);
          if (c.finishReason) deltas.push(...calls.end());
          // The chunk's logprobs ride on its first delta (or on an empty one when the parser holds its text back).
          if (deltas.length === 0 && lps) deltas.push({});
          deltas.forEach((delta, i) => sse.data(chunk([{ index, delta, logprobs: i === 0 ? lps : null, finish_reason: null }])));
        }
        if (c.finishReason) {
          const finish = toolFinishReason(c.finishReason, calls?.madeCalls ?? false);
          sse.data(chunk([{ index, delta: {}, logprobs: null, finish_reason: finish, matched_stop: c.matchedStop }]));
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
