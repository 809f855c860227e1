import { FastifyReply } from 'fastify';
import { IrisError } from '../../errors.js';
import { kvUsageRatio, prefixHitRate } from '../../engine/messages.js';
import { ServerContext } from '../context.js';
import { errorBody } from '../errors.js';

const VERSION = '0.1.0';

export function listModels(ctx: ServerContext) {
  const e = ctx.engine;
  return {
    object: 'list',
    data: [{ id: ctx.opts.servedModelName, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'iris', root: e.modelPath, max_model_len: e.info.contextLength }],
  };
}

export async function health(ctx: ServerContext, reply: FastifyReply) {
  if (ctx.draining) return reply.code(503).send(errorBody('shutting down', 'ServiceUnavailableError', null, 503));
  return reply.code(200).send('');
}

/** Runs a one-token generation end to end. */
export async function healthGenerate(ctx: ServerContext, reply: FastifyReply) {
  if (ctx.draining) return health(ctx, reply);
  const tok = ctx.engine.tokenizer.encode('hi')[0] ?? 0;
  const r = await Promise.race([
    ctx.engine.generate({ inputIds: [tok], sampling: { maxNewTokens: 1, temperature: 0 } }),
    new Promise<never>((_, rej) => setTimeout(() => rej(new IrisError('the engine did not answer within 20 s', { status: 503, type: 'ServiceUnavailableError' })), 20_000)),
  ]);
  return reply.code(200).send(r.tokenIds.length === 1 ? '' : 'unexpected');
}

export function modelInfo(ctx: ServerContext) {
  const e = ctx.engine;
  return {
    model_path: e.modelPath,
    tokenizer_path: e.modelPath,
    served_model_name: ctx.opts.servedModelName,
    is_generation: true,
    has_image_understanding: true,
    architectures: [e.info.architecture],
    model_type: e.info.modelType,
    context_length: e.info.contextLength,
    preferred_sampling_params: null,
    weight_version: 'default',
  };
}

export async function serverInfo(ctx: ServerContext) {
  const e = ctx.engine;
  const stats = await e.stats();
  return {
    version: VERSION,
    model_path: e.modelPath,
    served_model_name: ctx.opts.servedModelName,
    host: ctx.opts.host,
    port: ctx.opts.port,
    context_length: e.info.contextLength,
    max_total_num_tokens: e.info.maxTotalTokens,
    max_concurrent_requests: ctx.opts.maxConcurrentRequests,
    chat_template: e.chatTemplate.path ?? e.chatTemplate.source,
    weight_bytes: e.info.weightBytes,
    resident_weight_bytes: e.info.residentWeightBytes,
    quantization: e.info.quantization,
    memory_plan: e.info.memoryPlan,
    image_max_tokens: e.imageMaxTokens,
    tool_call_parser: ctx.toolCallParser.name,
    load_seconds: e.info.loadSeconds,
    num_running_reqs: stats.running,
    num_queued_reqs: stats.waiting,
    in_flight_http_requests: ctx.inFlight,
    kv_cache: {
      page_size: stats.pageSize,
      total_pages: stats.totalPages,
      free_pages: stats.freePages,
      used_pages: stats.usedPages,
      cached_pages: stats.cachedPages,
      total_tokens: stats.totalPages * stats.pageSize,
      usage: kvUsageRatio(stats),
    },
    prefix_cache: {
      enabled: !ctx.opts.disableRadixCache,
      prompt_tokens: stats.promptTokens,
      cached_prompt_tokens: stats.cachedPromptTokens,
      hit_rate: prefixHitRate(stats),
    },
    vision_cache: { hits: stats.visionCacheHits, misses: stats.visionCacheMisses },
    preemptions: stats.preemptions,
  };
}

export async function metrics(ctx: ServerContext, reply: FastifyReply) {
  ctx.metrics.scrape(await ctx.engine.stats());
  return reply.header('content-type', ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
}
