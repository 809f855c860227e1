import { randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { FastifyInstance, FastifyReply, FastifyRequest, LogController } from 'fastify';
import { Engine } from '../engine/engine.js';
import { InvalidRequestError } from '../errors.js';
import { ServeOptions, ServerContext } from './context.js';
import { errorBody, renderError } from './errors.js';
import { chatCompletions } from './routes/chat.js';
import { completions } from './routes/completions.js';
import { generate } from './routes/generate.js';
import { health, healthGenerate, listModels, metrics, modelInfo, serverInfo } from './routes/info.js';
import { isPlaygroundPath, registerPlayground } from './playground.js';

// As in SGLang: probes and Prometheus scrapers (an endpoint picker among them) carry no key.
const OPEN_ROUTES = new Set(['/health', '/health_generate', '/metrics']);

function keyMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The offset of the first byte that breaks UTF-8 (the shortest prefix that does not decode). */
function firstBadUtf8(bytes: Buffer): number {
  let lo = 0;
  let hi = bytes.length;
  // Prefixes decode (streaming mode tolerates a cut character at the end) up to the bad byte.
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}

/** The HTTP server: OpenAI- and SGLang-compatible routes over one Engine. */
export function createServer(engine: Engine, opts: ServeOptions, logLevel = 'info'): { app: FastifyInstance; ctx: ServerContext } {
  const app = Fastify({
    logger: { level: logLevel },
    bodyLimit: opts.maxBodyBytes,
    genReqId: () => `req-${randomUUID().slice(0, 8)}`,
    // Per-request access lines only at debug level; errors are always logged.
    logController: new LogController({ disableRequestLogging: logLevel !== 'debug' }),
  });
  const ctx = new ServerContext(engine, opts, app.log);

  // curl -d sends application/x-www-form-urlencoded; SGLang reads the body as JSON whatever the header says.
  // Bytes that are not UTF-8 are refused: replacing them would run a prompt the client did not send.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new InvalidRequestError(`the request body is not valid UTF-8 (first bad byte at offset ${firstBadUtf8(body as Buffer)})`), undefined);
      return;
    }
    try {
      done(null, text.length ? JSON.parse(text) : undefined);
    } catch (e) {
      done(Object.assign(new Error((e as Error).message), { statusCode: 400 }), undefined);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    const path = req.url.split('?')[0]!;
    if (!opts.apiKey || OPEN_ROUTES.has(path) || (opts.playground && isPlaygroundPath(path))) return;
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Bearer ') ? auth.slice(7) : (req.headers['x-api-key'] as string | undefined);
    if (!given || !keyMatches(given, opts.apiKey)) {
      return reply.code(401).send(errorBody(given ? 'invalid API key' : 'missing API key (Authorization: Bearer ...)', 'AuthenticationError', null, 401));
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.requests.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });

  app.setErrorHandler((err, req, reply) => {
    const r = renderError(err, String(req.id));
    if (r.internal) req.log.error({ err, reqId: req.id }, 'request failed');
    const retryAfter = (err as { retryAfter?: number }).retryAfter;
    if (r.status === 503) reply.header('retry-after', String(retryAfter ?? 1));
    return reply.code(r.status).send(r.body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody(`no route ${req.method} ${req.url}`, 'NotFoundError', null, 404)),
  );

  const h = (fn: (ctx: ServerContext, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>) => (req: FastifyRequest, reply: FastifyReply) => fn(ctx, req, reply);
  app.post('/v1/chat/completions', h(chatCompletions));
  app.post('/v1/completions', h(completions));
  app.post('/generate', h(generate));
  app.get('/v1/models', async () => listModels(ctx));
  app.get('/health', async (_req, reply) => health(ctx, reply));
  app.get('/health_generate', async (_req, reply) => healthGenerate(ctx, reply));
  app.get('/get_model_info', async () => modelInfo(ctx));
  app.get('/get_server_info', async () => serverInfo(ctx));
  app.get('/metrics', async (_req, reply) => metrics(ctx, reply));
  if (opts.playground) registerPlayground(app);
  return { app, ctx };
}
