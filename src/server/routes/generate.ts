import { randomUUID } from 'node:crypto';
import { FastifyReply, FastifyRequest } from 'fastify';
import { GenerateChunk, TokenLogprobInfo } from '../../engine/engine.js';
import { InvalidRequestError } from '../../errors.js';
import { ServerContext } from '../context.js';
import { generateRequestSchema } from '../protocol/completions.js';
import { toSampling } from '../protocol/sampling.js';
import { ConstraintFields, constraintFromRequest } from '../protocol/constraints.js';
import { parseBody } from '../protocol/validate.js';
import { RunningRequest, streamSse } from './run.js';

function finishReasonJson(c: { finishReason: string | null; matchedStop: number | string | null; usage: { completionTokens: number } | null }) {
  if (!c.finishReason) return null;
  if (c.finishReason === 'length') return { type: 'length', length: c.usage?.completionTokens ?? 0 };
  if (c.finishReason === 'stop') return { type: 'stop', matched: c.matchedStop };
  return { type: 'abort', message: 'aborted' };
}

/** POST /generate, SGLang's native API: text or input_ids, image_data, sampling_params. */
export async function generate(ctx: ServerContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const body = parseBody(generateRequestSchema, request.body);
  const text = Array.isArray(body.text) ? body.text[0] : body.text;
  const inputIds = body.input_ids ? (Array.isArray(body.input_ids[0]) ? (body.input_ids[0] as number[]) : (body.input_ids as number[])) : undefined;
  if ((text === undefined || text === null) === (inputIds === undefined)) throw new InvalidRequestError('give exactly one of text and input_ids', 'text');
  const images = body.image_data === undefined || body.image_data === null ? [] : (Array.isArray(body.image_data) ? body.image_data : [body.image_data]).map((x) => (typeof x === 'string' ? x : x.url));
  const topN = body.return_logprob ? (body.top_logprobs_num ?? 0) : null;
  const sp = body.sampling_params ?? {};
  const sampling = { ...toSampling({ ...sp, max_new_tokens: sp.max_new_tokens ?? 128 }, topN), constraint: constraintFromRequest(sp as ConstraintFields) };

  const run = new RunningRequest(ctx, request, reply);
  try {
    const prepared = await ctx.engine.prepare(
      text !== undefined && text !== null ? { prompt: text, images, sampling, signal: run.signal } : { inputIds, images, sampling, signal: run.signal },
    );
    const rid = body.rid ?? randomUUID().replace(/-/g, '');
    const t0 = performance.now();
    const lp: TokenLogprobInfo[] = [];
    const ids: number[] = [];
    let textSoFar = '';
    const payload = (c: GenerateChunk) => {
      const meta: Record<string, unknown> = {
        id: rid,
        finish_reason: finishReasonJson(c),
        prompt_tokens: prepared.ids.length,
        completion_tokens: ids.length,
        cached_tokens: c.usage?.cachedTokens ?? 0,
        e2e_latency: (performance.now() - t0) / 1000,
      };
      if (topN !== null) {
        meta.output_token_logprobs = lp.map((l) => [l.logprob, l.tokenId, null]);
        meta.output_top_logprobs = lp.map((l) => l.top.map((t) => [t.logprob, t.tokenId, null]));
      }
      return { text: textSoFar, output_ids: ids, meta_info: meta };
    };
    const absorb = (c: GenerateChunk) => {
      textSoFar += c.text;
      ids.push(...c.tokenIds);
      if (c.logprobs) lp.push(...c.logprobs);
    };

    if (!body.stream) {
      let last: GenerateChunk | null = null;
      await run.streamChoices(prepared, 1, (_i, c) => {
        absorb(c);
        last = c;
      });
      return reply.send(payload(last!));
    }
    // SGLang streams the cumulative text and ids in each event.
    return await streamSse(ctx, reply, async (sse) => {
      await run.streamChoices(prepared, 1, (_i, c) => {
        absorb(c);
        sse.data(payload(c));
      });
    });
  } finally {
    run.release();
  }
}
