/**
 * Serving benchmark in the manner of sglang.bench_serving: `npm run bench:serve [-- flags]`.
 *
 * Starts `iris serve` on a model (default: the random-weight Qwen2-VL-2B-shape checkpoint,
 * written once to ~/.cache/iris-bench/qwen2vl-2b-random; `--tiny`: the tiny golden fixture;
 * `--model-path DIR`), or targets a running server (`--base-url`), then either
 *   - `--scenario random` (implied by any workload flag): random prompts of chosen lengths with
 *     optional generated images, Poisson arrivals, optional concurrency cap; reports throughput,
 *     TTFT / TPOT / ITL / E2E percentiles and prefix-cache hit rates (table + a JSON line), or
 *   - `--scenario ratios` (the default when no workload flag is given): three ratios measured
 *     in the same run with their targets (see bench/serve/ratios.ts).
 * Every request is a streamed /v1/chat/completions with ignore_eos and max_tokens = output
 * length (exact output lengths) and, unless --no-logprobs, logprobs: true so each token arrives
 * as its own chunk even when its text is empty (random weights often emit such tokens).
 */
import { appendFileSync, existsSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ChatRequestSpec, RequestResult, Target, closeAgent, getJson, parseBaseUrl, streamChat } from './serve/client.js';
import { defaultCheckpointDir, ensureCheckpoint } from './checkpoint.js';
import { printRatios, runRatios } from './serve/ratios.js';
import { computeMetrics, printMetrics, serverCounters, serverDelta } from './serve/report.js';
import { ServerHandle, startServer } from './serve/server.js';
import { Rng, fmt, log, sleep } from './serve/util.js';
import { ImageFormat, ImagePool, PromptMaker, content } from './serve/workload.js';

const WORKLOAD_FLAGS = ['num-prompts', 'request-rate', 'max-concurrency', 'input-len', 'output-len', 'range-ratio', 'image-count', 'image-size', 'image-format', 'repeat-image-ratio'];

const USAGE = `usage: npm run bench:serve -- [options]
target:
  --base-url URL               benchmark a running server (http://127.0.0.1:30000) instead of starting one
  --model-path DIR             model to serve (default: the Qwen2-VL-2B-shape random checkpoint, made if missing)
  --tiny                       serve test/fixtures/golden/qwen2_5_vl/model (fast; for debugging)
  --api-key KEY                bearer key of the server
server (when the benchmark starts it):
  --context-length N  --max-total-tokens N  --chunked-prefill-size N  --max-running-requests N
  --disable-radix-cache  --threads N  --server-args "ARGS"  (more iris serve flags, split on spaces)
  --server-log FILE            where the server's output goes (default: a file in the temp folder)
scenario:
  --scenario ratios|random     default: ratios when no workload flag is given, else random
workload (random):
  --num-prompts N (8)  --request-rate R|inf (inf)  --max-concurrency N  --input-len N (128)
  --output-len N (32)  --range-ratio F (0: lengths uniform in [max(1, F*len), len])
  --image-count N (0)  --image-size WxH (448x448)  --image-format png|jpeg (jpeg)
  --repeat-image-ratio F (0)  --warmup-requests N (1)
ratios:
  --ratio-batch N (8)  --ratio-streams N (4)  --ratio-long-len N (4000)  --ratio-runs N (3)
  --ratio-image-size WxH (448x448)  --ratio-single-output N (32)  --ratio-batch-output N (48)
  --ratio-stream-output N (48)
general:
  --seed N (1)  --no-logprobs  --output-file FILE (appends the JSON result line)  --help`;

function parseSize(s: string): { w: number; h: number } {
  const m = /^(\d+)x(\d+)$/i.exec(s.trim());
  if (!m) throw new Error(`expected WxH, got ${s}`);
  return { w: Number(m[1]), h: Number(m[2]) };
}

function num(v: string | undefined, def: number, name: string, int = true): number {
  if (v === undefined) return def;
  const n = v === 'inf' ? Infinity : Number(v);
  if (Number.isNaN(n) || (int && Number.isFinite(n) && !Number.isInteger(n))) throw new Error(`--${name}: bad number ${v}`);
  return n;
}

function projectRoot(): string {
  // dist/bench/serve.js -> project root
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const up of ['..', '../..']) {
    const root = join(here, up);
    if (existsSync(join(root, 'package.json'))) return root;
  }
  return process.cwd();
}

async function warmupAndRun(t: Target, specs: Array<{ spec: ChatRequestSpec }>, rate: number, maxConc: number, rng: Rng): Promise<{ results: RequestResult[]; durationS: number }> {
  const results: RequestResult[] = new Array(specs.length);
  let inFlight = 0;
  const waiters: Array<() => void> = [];
  const acquire = async () => {
    while (inFlight >= maxConc) await new Promise<void>((r) => waiters.push(r));
    inFlight++;
  };
  const release = () => {
    inFlight--;
    waiters.shift()?.();
  };
  let done = 0;
  const t0 = performance.now();
  const tasks: Promise<void>[] = [];
  for (let i = 0; i < specs.length; i++) {
    if (i > 0 && Number.isFinite(rate)) await sleep(rng.exp(rate) * 1000);
    tasks.push(
      (async () => {
        await acquire();
        try {
          const r = await streamChat(t, specs[i]!.spec);
          results[i] = r;
          done++;
          log(`[${done}/${specs.length}] ${r.ok ? `ok: ${r.promptTokens} prompt (${r.cachedTokens} cached) + ${r.completionTokens} output tokens, TTFT ${fmt(r.ttft, 0)} ms, E2E ${fmt(r.e2e, 0)} ms` : `FAILED: ${r.error}`}`);
        } finally {
          release();
        }
      })(),
    );
  }
  await Promise.all(tasks);
  return { results, durationS: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      'base-url': { type: 'string' },
      'model-path': { type: 'string' },
      tiny: { type: 'boolean' },
      'api-key': { type: 'string' },
      'context-length': { type: 'string' },
      'max-total-tokens': { type: 'string' },
      'chunked-prefill-size': { type: 'string' },
      'max-running-requests': { type: 'string' },
      'disable-radix-cache': { type: 'boolean' },
      threads: { type: 'string' },
      'server-args': { type: 'string' },
      'server-log': { type: 'string' },
      scenario: { type: 'string' },
      'num-prompts': { type: 'string' },
      'request-rate': { type: 'string' },
      'max-concurrency': { type: 'string' },
      'input-len': { type: 'string' },
      'output-len': { type: 'string' },
      'range-ratio': { type: 'string' },
      'image-count': { type: 'string' },
      'image-size': { type: 'string' },
      'image-format': { type: 'string' },
      'repeat-image-ratio': { type: 'string' },
      'warmup-requests': { type: 'string' },
      'ratio-batch': { type: 'string' },
      'ratio-streams': { type: 'string' },
      'ratio-long-len': { type: 'string' },
      'ratio-runs': { type: 'string' },
      'ratio-image-size': { type: 'string' },
      'ratio-single-output': { type: 'string' },
      'ratio-batch-output': { type: 'string' },
      'ratio-stream-output': { type: 'string' },
      seed: { type: 'string' },
      'no-logprobs': { type: 'boolean' },
      'output-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    console.log(USAGE);
    return;
  }
  const given = WORKLOAD_FLAGS.filter((f) => (v as Record<string, unknown>)[f] !== undefined);
  const scenario = v.scenario ?? (given.length ? 'random' : 'ratios');
  if (scenario !== 'ratios' && scenario !== 'random') throw new Error(`--scenario must be ratios or random, got ${scenario}`);
  if (scenario === 'ratios' && given.length) log(`note: ${given.map((f) => `--${f}`).join(', ')} ignored by --scenario ratios`);
  const seed = num(v.seed, 1, 'seed');
  const rng = new Rng(seed);
  const logprobs = !v['no-logprobs'];
  const uptime = () => `load average ${loadavg().map((x) => x.toFixed(2)).join(', ')} (${cpus().length} CPUs)`;
  log(uptime());

  // ---- the server -----------------------------------------------------------------------
  let server: ServerHandle | null = null;
  let host: string;
  let port: number;
  let modelLabel: string;
  const stopServer = async () => {
    if (server) {
      log(`stopping the server (pid ${server.pid})`);
      const s = server;
      server = null;
      await s.stop();
    }
  };
  process.once('SIGINT', () => void stopServer().then(() => process.exit(130)));
  try {
    if (v['base-url']) {
      ({ host, port } = parseBaseUrl(v['base-url']));
      if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') log(`warning: ${host} is not a loopback address`);
      modelLabel = v['base-url'];
    } else {
      let modelPath: string;
      if (v.tiny) modelPath = join(projectRoot(), 'test', 'fixtures', 'golden', 'qwen2_5_vl', 'model');
      else if (v['model-path']) modelPath = v['model-path'];
      else {
        modelPath = defaultCheckpointDir();
        const c = ensureCheckpoint(modelPath, log);
        log(c.reused ? `reusing the checkpoint in ${modelPath}` : `checkpoint written in ${c.seconds.toFixed(1)} s`);
      }
      modelLabel = modelPath;
      const extra: string[] = ['--log-level', 'warn'];
      const pass = (flag: string) => {
        const x = (v as Record<string, unknown>)[flag];
        if (typeof x === 'string') extra.push(`--${flag}`, x);
        else if (x === true) extra.push(`--${flag}`);
      };
      ['context-length', 'max-total-tokens', 'chunked-prefill-size', 'max-running-requests', 'disable-radix-cache', 'threads', 'api-key'].forEach(pass);
      if (v['server-args']) extra.push(...v['server-args'].split(/\s+/).filter(Boolean));
      const logPath = v['server-log'] ?? join(tmpdir(), `iris-bench-serve-${process.pid}.log`);
      server = await startServer(modelPath, extra, logPath);
      ({ host, port } = server);
    }
    const probe = { host, port, apiKey: v['api-key'] };
    const models = await getJson(probe, '/v1/models');
    const info = await getJson(probe, '/get_model_info');
    const sinfo = await getJson(probe, '/get_server_info');
    const target: Target = { ...probe, model: models.data?.[0]?.id ?? 'default' };
    const contextLength: number = info.context_length ?? 4096;
    log(`model ${info.model_path} (${info.model_type}), context ${contextLength}, KV pool ${sinfo.kv_cache?.total_tokens ?? '?'} tokens, load ${fmt(sinfo.load_seconds ?? NaN, 1)} s`);
    const prompts = PromptMaker.load(info.model_path ?? null, rng.fork(1));
    const common = {
      backend: 'iris',
      model: modelLabel,
      base_url: `http://${host}:${port}`,
      seed,
      logprobs,
      load_average: loadavg(),
      cpus: cpus().length,
      server_started_by_bench: server !== null,
      server_start_s: server ? (server as ServerHandle).startSeconds : null,
    };

    let json: Record<string, unknown>;
    if (scenario === 'ratios') {
      const img = parseSize(v['ratio-image-size'] ?? '448x448');
      const r = await runRatios({
        target,
        prompts,
        rng: rng.fork(2),
        logprobs,
        contextLength,
        batch: num(v['ratio-batch'], 8, 'ratio-batch'),
        decodeInputLen: 32,
        singleOutputLen: num(v['ratio-single-output'], 32, 'ratio-single-output'),
        batchOutputLen: num(v['ratio-batch-output'], 48, 'ratio-batch-output'),
        imageWidth: img.w,
        imageHeight: img.h,
        imageFormat: 'png',
        ttftRuns: num(v['ratio-runs'], 3, 'ratio-runs'),
        streams: num(v['ratio-streams'], 4, 'ratio-streams'),
        streamOutputLen: num(v['ratio-stream-output'], 48, 'ratio-stream-output'),
        longLen: num(v['ratio-long-len'], 4000, 'ratio-long-len'),
        markTokens: 3,
      });
      printRatios(r);
      json = { ...common, ...r, load_average_end: loadavg() };
    } else {
      const numPrompts = num(v['num-prompts'], 8, 'num-prompts');
      const rate = num(v['request-rate'], Infinity, 'request-rate', false);
      const maxConc = num(v['max-concurrency'], Infinity, 'max-concurrency');
      const inputLen = num(v['input-len'], 128, 'input-len');
      const outputLen = num(v['output-len'], 32, 'output-len');
      const rangeRatio = num(v['range-ratio'], 0, 'range-ratio', false);
      const imageCount = num(v['image-count'], 0, 'image-count');
      const size = parseSize(v['image-size'] ?? '448x448');
      const format = (v['image-format'] ?? 'jpeg') as ImageFormat;
      if (format !== 'png' && format !== 'jpeg') throw new Error(`--image-format must be png or jpeg`);
      const repeat = num(v['repeat-image-ratio'], 0, 'repeat-image-ratio', false);
      const warmups = num(v['warmup-requests'], 1, 'warmup-requests');
      const lenRng = rng.fork(3);
      const pick = (len: number) => lenRng.int(Math.max(1, Math.floor(len * rangeRatio)), len);
      const pool = new ImagePool(rng.fork(4), size.w, size.h, format, repeat);
      log(`generating ${numPrompts} requests (${imageCount} image(s) each)`);
      const specs: Array<{ spec: ChatRequestSpec }> = [];
      let imageBytes = 0;
      for (let i = 0; i < numPrompts; i++) {
        const images = [];
        for (let k = 0; k < imageCount; k++) images.push(await pool.next());
        imageBytes += images.reduce((a, x) => a + x.bytes, 0);
        specs.push({ spec: { content: content(images, prompts.text(pick(inputLen))), maxTokens: pick(outputLen), logprobs, ignoreEos: true, tag: `req-${i}` } });
      }
      // Warm-up: text only, so the images' first sight stays inside the measurement.
      for (let i = 0; i < warmups; i++) {
        log(`warm-up request ${i + 1}/${warmups}`);
        const w = await streamChat(target, { content: prompts.text(16), maxTokens: 4, logprobs, ignoreEos: true });
        if (!w.ok) throw new Error(`warm-up request failed: ${w.error}`);
      }
      const before = await serverCounters(target);
      log(`running ${numPrompts} requests, rate ${rate === Infinity ? 'inf' : rate} req/s, max concurrency ${maxConc === Infinity ? 'none' : maxConc}`);
      const { results, durationS } = await warmupAndRun(target, specs, rate, maxConc, rng.fork(5));
      const after = await serverCounters(target);
      const m = computeMetrics(results, durationS);
      const sd = serverDelta(before, after);
      printMetrics(
        m,
        [
          ['Backend', 'iris'],
          ['Model', modelLabel],
          ['Traffic request rate', rate === Infinity ? 'inf' : String(rate)],
          ['Max request concurrency', maxConc === Infinity ? 'not set' : String(maxConc)],
          ['Input / output length', `${inputLen} / ${outputLen} (range ratio ${rangeRatio})`],
          ['Images per request', imageCount ? `${imageCount} x ${size.w}x${size.h} ${format} (${pool.fresh} distinct, ${pool.repeated} repeats, ${(imageBytes / 1e6).toFixed(2)} MB)` : '0'],
          ['Load average (1/5/15 min)', loadavg().map((x) => x.toFixed(2)).join(' / ')],
        ],
        sd,
      );
      json = {
        ...common,
        scenario: 'random',
        num_prompts: numPrompts,
        request_rate: rate === Infinity ? 'inf' : rate,
        max_concurrency: maxConc === Infinity ? null : maxConc,
        input_len: inputLen,
        output_len: outputLen,
        range_ratio: rangeRatio,
        image_count: imageCount,
        image_size: `${size.w}x${size.h}`,
        image_format: format,
        repeat_image_ratio: repeat,
        distinct_images: pool.fresh,
        repeated_images: pool.repeated,
        ...m,
        server: sd,
        load_average_end: loadavg(),
      };
    }
    const line = JSON.stringify(json);
    console.log(line);
    if (v['output-file']) appendFileSync(v['output-file'], line + '\n');
    log(uptime());
  } finally {
    closeAgent();
    await stopServer();
  }
}

main().catch((e) => {
  console.error(`bench:serve: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exitCode = 1;
});
