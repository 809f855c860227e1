/**
 * The HTTP layer's own cost: p50 latency of a chat completion answered by a
 * trivial engine stub through `iris serve`'s server, versus calling the stub
 * directly, in the same run. Target: under 1 ms added.
 */
import { request as httpRequest, Agent } from 'node:http';
import { Engine, GenerateChunk, GenerateInput, PreparedRequest } from '../src/engine/engine.js';
import { DEFAULT_SAMPLING } from '../src/engine/samplingParams.js';
import { createServer } from '../src/server/app.js';

class StubEngine {
  modelPath = 'stub';
  info = { architecture: 'Stub', modelType: 'stub', vocabSize: 10, contextLength: 4096, maxTotalTokens: 4096, weightBytes: 0, loadSeconds: 0 };
  chatTemplate = { path: null, source: 'override' };
  tokenizer = { encode: () => [1] };
  async prepare(input: GenerateInput): Promise<PreparedRequest> {
    return { prompt: 'p', ids: Int32Array.of(1, 2, 3), images: [], sampling: { ...DEFAULT_SAMPLING, ...input.sampling } };
  }
  async *stream(req: PreparedRequest): AsyncGenerator<GenerateChunk> {
    yield { text: 'ok', tokenIds: [7], logprobs: null, finishReason: 'stop', matchedStop: 0, usage: { promptTokens: req.ids.length, completionTokens: 1, totalTokens: req.ids.length + 1 }, prompt: req.prompt };
  }
  async collect(s: AsyncIterable<GenerateChunk>) {
    let last!: GenerateChunk;
    for await (const c of s) last = c;
    return { text: last.text, tokenIds: last.tokenIds, finishReason: last.finishReason!, matchedStop: last.matchedStop, usage: last.usage!, logprobs: null, prompt: last.prompt };
  }
  async stats() {
    return { running: 0, waiting: 0, totalPages: 1, freePages: 1, pageSize: 16 };
  }
}

const body = JSON.stringify({ model: 'stub', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 1, temperature: 0 });

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

async function main(): Promise<void> {
  const n = Number(process.env.IRIS_BENCH_N ?? 3000);
  const stub = new StubEngine();
  const engine = stub as unknown as Engine;

  // Direct: what a route does minus HTTP (prepare + run + collect).
  const direct: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await engine.collect(engine.stream(await engine.prepare({ messages: [{ role: 'user', content: 'Hello there' }], sampling: { maxNewTokens: 1 } })));
    direct.push(performance.now() - t);
  }

  const { app } = createServer(engine, { host: '127.0.0.1', port: 0, servedModelName: 'stub', apiKey: null, maxConcurrentRequests: 1000, maxBodyBytes: 1 << 20, shutdownGraceSeconds: 1 }, 'warn');
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  for (let i = 0; i < 200; i++) await once();
  const http: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await once();
    http.push(performance.now() - t);
  }
  agent.destroy();
  await app.close();

  const d50 = percentile(direct, 0.5);
  const h50 = percentile(http, 0.5);
  const added = h50 - d50;
  const rows = [
    ['direct call p50', `${d50.toFixed(3)} ms`],
    ['HTTP round trip p50', `${h50.toFixed(3)} ms`],
    ['HTTP round trip p99', `${percentile(http, 0.99).toFixed(3)} ms`],
    ['added by HTTP (p50)', `${added.toFixed(3)} ms (target < 1 ms: ${(added / 1).toFixed(2)}x of the limit)`],
  ];
  for (const [k, v] of rows) console.log(`${k!.padEnd(24)} ${v}`);
  console.log(JSON.stringify({ requests: n, direct_p50_ms: d50, http_p50_ms: h50, http_p99_ms: percentile(http, 0.99), added_p50_ms: added, target_ms: 1 }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
