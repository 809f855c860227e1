import { createServer } from '../server/app.js';
import type { ToolCallFormat } from '../tools/types.js';
import { ModelCliOptions, loadEngine } from './loadEngine.js';

export interface ServeCliOptions extends ModelCliOptions {
  host: string;
  port: number;
  servedModelName?: string;
  apiKey?: string;
  contextLength?: number;
  maxRunningRequests: number;
  maxQueuedRequests: number;
  maxTotalTokens?: number;
  chunkedPrefillSize: number;
  disableRadixCache?: boolean;
  visionCacheMb: number;
  logLevel: string;
  allowedLocalMediaPath?: string;
  mediaFetchTimeout: number;
  mediaConnectTimeout: number;
  mediaRetries: number;
  mediaUrlMaxFileSizeMb: number;
  maxImagePixels: number;
  maxImagesPerRequest: number;
  blockPrivateMediaHosts?: boolean;
  lowDetailMaxPixels: number;
  maxBodyMb: number;
  shutdownGracePeriod: number;
  toolCallParser?: ToolCallFormat;
  disablePlayground?: boolean;
}

/** `iris serve`: load the model, serve HTTP, stop cleanly on SIGTERM/SIGINT. */
export async function runServe(o: ServeCliOptions): Promise<void> {
  // Signals are handled from the start: one that arrives while the model loads ends the
  // process cleanly too, instead of killing it.
  let stop: ((signal: string) => Promise<void>) | null = null;
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (stop) void stop(signal);
    else process.exit(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const engine = await loadEngine({ ...o, quiet: !['trace', 'debug', 'info'].includes(o.logLevel) }, {
    contextLength: o.contextLength,
    maxRunningRequests: o.maxRunningRequests,
    maxTotalTokens: o.maxTotalTokens,
    // The HTTP layer admits requests; each may run up to 16 choices (n) in the engine.
    maxQueuedRequests: (o.maxRunningRequests + o.maxQueuedRequests) * 16,
    chunkedPrefillSize: o.chunkedPrefillSize,
    disableRadixCache: o.disableRadixCache,
    visionCacheMb: o.visionCacheMb,
    lowDetailMaxPixels: o.lowDetailMaxPixels,
    imageLimits: {
      allowedLocalMediaPath: o.allowedLocalMediaPath ?? null,
      fetchTimeoutMs: o.mediaFetchTimeout * 1000,
      connectTimeoutMs: o.mediaConnectTimeout * 1000,
      retries: o.mediaRetries,
      maxBytes: Math.round(o.mediaUrlMaxFileSizeMb * 1024 * 1024),
      maxImagePixels: o.maxImagePixels,
      maxImagesPerRequest: o.maxImagesPerRequest,
      blockPrivateHosts: Boolean(o.blockPrivateMediaHosts),
      maxRedirects: 5,
    },
  });
  const { app, ctx } = createServer(
    engine,
    {
      host: o.host,
      port: o.port,
      servedModelName: o.servedModelName ?? engine.modelPath,
      apiKey: o.apiKey ?? null,
      maxConcurrentRequests: o.maxRunningRequests + o.maxQueuedRequests,
      maxBodyBytes: Math.round(o.maxBodyMb * 1024 * 1024),
      shutdownGraceSeconds: o.shutdownGracePeriod,
      disableRadixCache: o.disableRadixCache,
      toolCallParser: o.toolCallParser,
      playground: !o.disablePlayground,
    },
    o.logLevel,
  );
  await app.listen({ host: o.host, port: o.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  ctx.opts.port = port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  process.stdout.write(`Iris is ready at http://${host}:${port} (model ${ctx.opts.servedModelName})\n`);

  stop = async (signal: string) => {
    app.log.info(`${signal}: finishing ${ctx.inFlight} in-flight request(s), up to ${o.shutdownGracePeriod} s`);
    ctx.draining = true;
    void app.close();
    const deadline = Date.now() + o.shutdownGracePeriod * 1000;
    while (ctx.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of ctx.controllers) c.abort();
    const hard = Date.now() + 2000;
    while (ctx.inFlight > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
    await engine.shutdown();
    process.exit(0);
  };
}
