import { randomUUID } from 'node:crypto';
import { FastifyReply, FastifyRequest } from 'fastify';
import { GenerateChunk, GenerateResult } from '../../engine/engine.js';
import { ServerContext } from '../context.js';
import { renderError } from '../errors.js';
import { COMPLETION_UNSUPPORTED, completionRequestSchema } from '../protocol/completions.js';
import { completionLogprobs, sumUsage, usageJson } from '../protocol/responses.js';
import { toSampling } from '../protocol/sampling.js';
import { parseBody, refuseUnsupported } from '../protocol/validate.js';
import { RunningRequest, startSse } from './run.js';

/** POST /v1/completions: each prompt (text or token ids) times n choices. */
export async function completions(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = parseBody(completionRequestSchema, request.body);
  refuseUnsupported(body as Record<string, unknown>, COMPLETION_UNSUPPORTED);
  const topN = body.logprobs ?? null;
  const n = body.n ?? 1;
  const p = body.prompt;
  const prompts: Array<string | number[]> =
    typeof p === 'string' ? [p] : typeof p[0] === 'number' ? [p as number[]] : (p as Array<string | number[]>);
  const sampling = toSampling({ ...body, max_tokens: body.max_tokens ?? 16 }, topN);

  const run = new RunningRequest(ctx, request, reply);
  try {
    const prepared = await Promise.all(
      prompts.map((pr) =>
        ctx.engine.prepare(typeof pr === 'string' ? { prompt: pr, sampling, signal: run.signal } : { inputIds: pr, sampling, signal: run.signal }),
      ),
    );
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = ctx.opts.servedModelName;
    const base = { id, object: 'text_completion', created, model };

    if (!body.stream) {
      const results: GenerateResult[] = (await Promise.all(prepared.map((pr) => run.collect(pr, n)))).flat();
      const usage = sumUsage(results);
      usage.promptTokens = prepared.reduce((a, pr) => a + pr.ids.length, 0);
      usage.totalTokens = usage.promptTokens + usage.completionTokens;
      return reply.send({
        ...base,
        choices: results.map((r, index) => ({ index, text: r.text, logprobs: completionLogprobs(r.logprobs, topN, 0), finish_reason: r.finishReason, matched_stop: r.matchedStop })),
        usage: usageJson(usage),
      });
    }

    const sse = startSse(reply);
    try {
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
      if (body.stream_options?.include_usage) {
        const all = finals.flat();
        const usage = sumUsage(all.map((c) => ({ usage: c.usage! })));
        usage.promptTokens = prepared.reduce((a, pr) => a + pr.ids.length, 0);
        usage.totalTokens = usage.promptTokens + usage.completionTokens;
        sse.data({ ...base, choices: [], usage: usageJson(usage) });
      }
    } catch (e) {
      sse.data(renderError(e, String(request.id)).body);
    }
    sse.end();
    return reply;
  } finally {
    run.release();
  }
}
