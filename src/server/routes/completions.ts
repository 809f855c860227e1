import { randomUUID } from 'node:crypto';
import { FastifyReply, FastifyRequest } from 'fastify';
import { GenerateChunk, GenerateResult, Usage } from '../../engine/engine.js';
import { ServerContext } from '../context.js';
import { COMPLETION_UNSUPPORTED, completionRequestSchema } from '../protocol/completions.js';
import { completionLogprobs, sumUsage, usageJson } from '../protocol/responses.js';
import { toSampling } from '../protocol/sampling.js';
import { ConstraintFields, constraintFromRequest } from '../protocol/constraints.js';
import { parseBody, refuseUnsupported } from '../protocol/validate.js';
import { RunningRequest, streamSse } from './run.js';

/** POST /v1/completions: each prompt (text or token ids) times n choices. */
export async function completions(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = parseBody(completionRequestSchema, request.body);
  refuseUnsupported(body as Record<string, unknown>, COMPLETION_UNSUPPORTED);
  const topN = body.logprobs ?? null;
  const n = body.n ?? 1;
  const p = body.prompt;
  const prompts: Array<string | number[]> =
    typeof p === 'string' ? [p] : typeof p[0] === 'number' ? [p as number[]] : (p as Array<string | number[]>);
  const sampling = { ...toSampling({ ...body, max_tokens: body.max_tokens ?? 16 }, topN), constraint: constraintFromRequest(body as ConstraintFields) };

  const run = new RunningRequest(ctx, request, reply);
  try {
    const prepared = await Promise.all(
      prompts.map((pr) =>
        ctx.engine.prepare(typeof pr === 'string' ? { prompt: pr, sampling, signal: run.signal } : { inputIds: pr, inputField: 'prompt', sampling, signal: run.signal }),
      ),
    );
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = ctx.opts.servedModelName;
    const base = { id, object: 'text_completion', created, model };
    // Every prompt counts once, whatever n is.
    const promptUsage = (usages: Usage[]): Usage => {
      const u = sumUsage(usages.map((usage) => ({ usage })));
      u.promptTokens = prepared.reduce((a, pr) => a + pr.ids.length, 0);
      u.totalTokens = u.promptTokens + u.completionTokens;
      return u;
    };

    if (!body.stream) {
      const results: GenerateResult[] = (await Promise.all(prepared.map((pr) => run.collect(pr, n)))).flat();
      const usage = promptUsage(results.map((r) => r.usage));
      return reply.send({
        ...base,
        choices: results.map((r, index) => ({ index, text: r.text, logprobs: completionLogprobs(r.logprobs, topN, 0), finish_reason: r.finishReason, matched_stop: r.matchedStop })),
        usage: usageJson(usage),
      });
    }

    return await streamSse(ctx, reply, async (sse) => {
      const offsets = new Map<number, number>();
      const finals: GenerateChunk[][] = await Promise.all(
        prepared.map((pr, k) =>
          run.streamChoices(pr, n, (i, c) => {
            const index = k * n + i;
            const off = offsets.get(index) ?? 0;
            offsets.set(index, off + c.text.length);
            sse.data({ ...base, choices: [{ index, text: c.text, logprobs: completionLogprobs(c.logprobs, topN, off), finish_reason: c.finishReason, matched_stop: c.matchedStop }] });
          }),
        ),
      );
      if (body.stream_options?.include_usage) sse.data({ ...base, choices: [], usage: usageJson(promptUsage(finals.flat().map((c) => c.usage!))) });
    });
  } finally {
    run.release();
  }
}
