/**
 * xgrammar and threads:
 *   1. Event-loop stalls: the API returns Promises but the work is synchronous WebAssembly; a
 *      setInterval(1 ms) probe records the longest gap between ticks during TokenizerInfo
 *      creation, compiles and getNextTokenBitmask().
 *   2. Handing xgrammar objects to a worker: postMessage of a TokenizerInfo, CompiledGrammar and
 *      GrammarMatcher (structured clone), and what the module's memory is (shared or not).
 *   3. Workers with their own module: each loads the bundle, builds its own TokenizerInfo and
 *      compiles; time and RSS per worker; two workers compiling at once vs one thread compiling
 *      the same grammars in turn; the main thread's longest stall while the workers compile;
 *   4. Cancelling a compile: worker.terminate() one second into a long compile.
 *
 * Run: npm run build && node dist/tools/xgrammar-eval/threads.js [--json OUT]
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { MB, hardware, log, now, wasmBytes, wasmMemoryShared, xg, type GrammarCompiler } from './common.js';
import { JSON_OBJECT_SCHEMA, typicalSchema } from './grammars.js';
import { QWEN2VL_LOGITS, buildVocab } from './vocab.js';

const SELF = fileURLToPath(import.meta.url);
const COMPACT: [string, string] = [',', ':'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A mid-size schema (bounded strings of 24) that compiles in a few seconds at 152k tokens. */
function mediumSchema(variant: number): string {
  return JSON.stringify({
    type: 'object',
    properties: { [`title_${variant}`]: { type: 'string', maxLength: 24 }, count: { type: 'integer', minimum: 0, maximum: 1000 }, kind: { enum: ['a', 'b', 'c'] }, tags: { type: 'array', items: { type: 'string' }, maxItems: 4 } },
    required: [`title_${variant}`, 'count', 'kind'],
  });
}

export async function stallDuring<T>(fn: () => Promise<T>): Promise<{ value: T; durationMs: number; maxStallMs: number; ticks: number }> {
  let last = now();
  let maxGap = 0;
  let ticks = 0;
  const timer = setInterval(() => { const t = now(); maxGap = Math.max(maxGap, t - last); last = t; ticks++; }, 1);
  await sleep(30);
  maxGap = 0;
  ticks = 0;
  last = now();
  const t0 = now();
  const value = await fn();
  const durationMs = now() - t0;
  await sleep(10);
  clearInterval(timer);
  return { value, durationMs, maxStallMs: maxGap, ticks };
}

// ---- worker side ----

interface Job { encoded: string[]; stopIds: number[]; schemas: string[] }

async function workerMain(): Promise<void> {
  const job = workerData as Job;
  const rss0 = process.memoryUsage().rss;
  const x = xg();
  const t0 = now();
  const info = await x.TokenizerInfo.createTokenizerInfo(job.encoded, 'byte_level', false, QWEN2VL_LOGITS, job.stopIds);
  const infoMs = now() - t0;
  const compiler: GrammarCompiler = await x.GrammarCompiler.createGrammarCompiler(info, false);
  parentPort!.postMessage({ type: 'ready', infoMs, wasmMB: wasmBytes() / MB });
  await new Promise<void>((r) => parentPort!.once('message', () => r()));
  const times: number[] = [];
  const t1 = now();
  for (const s of job.schemas) {
    const t = now();
    const g = await compiler.compileJSONSchema(s, false, -1, COMPACT, true);
    times.push(now() - t);
    const m = await x.GrammarMatcher.createGrammarMatcher(g);
    await m.getNextTokenBitmask();
    m.dispose();
    g.dispose();
  }
  parentPort!.postMessage({ type: 'done', wallMs: now() - t1, times, wasmMB: wasmBytes() / MB, rssDeltaMB: (process.memoryUsage().rss - rss0) / MB });
}

async function probeWorker(): Promise<void> {
  // Receives whatever the main thread posts and reports what arrived.
  parentPort!.on('message', (msg: unknown) => {
    const describe = (v: unknown) => {
      if (v === null || typeof v !== 'object') return String(v);
      const o = v as Record<string, unknown>;
      return `{${Object.keys(o).join(',')}} methods: ${typeof (o as { acceptToken?: unknown }).acceptToken}/${typeof (o as { dispose?: unknown }).dispose}; handle keys: ${o.handle && typeof o.handle === 'object' ? Object.keys(o.handle as object).join(',') : typeof o.handle}`;
    };
    parentPort!.postMessage(describe(msg));
  });
}

// ---- main side ----

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonOut = (() => { const i = args.indexOf('--json'); return i >= 0 ? args[i + 1] : undefined; })();
  const report: Record<string, unknown> = { hardware: hardware() };
  const x = xg();
  const vocab = buildVocab({ blankSpecials: true });

  // 1. stalls
  const stalls: Record<string, unknown> = {};
  const info = await stallDuring(() => x.TokenizerInfo.createTokenizerInfo(vocab.encoded, 'byte_level', false, QWEN2VL_LOGITS, vocab.stopIds));
  stalls['TokenizerInfo.createTokenizerInfo (151,936)'] = { durationMs: info.durationMs, maxStallMs: info.maxStallMs };
  const compiler = await x.GrammarCompiler.createGrammarCompiler(info.value, false);
  const cases: [string, () => Promise<{ dispose(): void }>][] = [
    ['compileJSONSchema json_object', () => compiler.compileJSONSchema(JSON_OBJECT_SCHEMA, false, -1, COMPACT, true)],
    ['compileJSONSchema medium schema (maxLength 24)', () => compiler.compileJSONSchema(mediumSchema(0), false, -1, COMPACT, true)],
    ['compileJSONSchema typical schema (speed.ts)', () => compiler.compileJSONSchema(JSON.stringify(typicalSchema()), false, -1, COMPACT, true)],
  ];
  for (const [label, fn] of cases) {
    const r = await stallDuring(fn);
    stalls[label] = { durationMs: r.durationMs, maxStallMs: r.maxStallMs };
    log(`${label}: ${r.durationMs.toFixed(0)} ms, longest event-loop stall ${r.maxStallMs.toFixed(0)} ms`);
    r.value.dispose();
  }
  const g = await compiler.compileJSONSchema(JSON_OBJECT_SCHEMA, false, -1, COMPACT, true);
  const m = await x.GrammarMatcher.createGrammarMatcher(g);
  m.acceptToken(vocab.encoded.indexOf('{"'));
  const mask = await stallDuring(async () => { for (let i = 0; i < 50; i++) await m.getNextTokenBitmask(); });
  stalls['50 x getNextTokenBitmask (inside a key string)'] = { durationMs: mask.durationMs, maxStallMs: mask.maxStallMs, ticksDuring: mask.ticks };
  report.stalls = stalls;

  // 2. handing objects to a worker
  const transfer: Record<string, unknown> = {};
  const probe = new Worker(SELF, { workerData: { role: 'probe' } });
  const ask = (label: string, value: unknown) => new Promise<void>((res) => {
    try {
      probe.once('message', (d) => { transfer[label] = `arrives as ${String(d)}`; res(); });
      probe.postMessage(value);
    } catch (e) {
      transfer[label] = `postMessage throws ${(e as Error).name}: ${(e as Error).message}`;
      probe.removeAllListeners('message');
      res();
    }
  });
  await ask('TokenizerInfo', info.value);
  await ask('CompiledGrammar', g);
  await ask('GrammarMatcher', m);
  await ask('CompiledGrammar.handle.$$.ptr (a number)', (g.handle as { $$: { ptr: number } }).$$.ptr);
  await probe.terminate();
  transfer['module memory'] = { wasmMB: wasmBytes() / MB, sharedArrayBuffer: wasmMemoryShared() };
  report.transfer = transfer;
  m.dispose();
  g.dispose();

  // 3. workers with their own module
  const schemas = (k: number) => Array.from({ length: 4 }, (_, i) => mediumSchema(100 * k + i));
  const start = async (k: number) => {
    const rssBefore = process.memoryUsage().rss;
    const w = new Worker(SELF, { workerData: { role: 'compile', encoded: vocab.encoded, stopIds: vocab.stopIds, schemas: schemas(k) } });
    const ready = await new Promise<{ infoMs: number; wasmMB: number }>((res, rej) => { w.once('message', res); w.once('error', rej); });
    return { w, ready, rssBefore };
  };
  const runAll = async (workers: { w: Worker }[]) => {
    const dones = workers.map(({ w }) => new Promise<{ wallMs: number; times: number[]; wasmMB: number; rssDeltaMB: number }>((res) => w.once('message', res)));
    for (const { w } of workers) w.postMessage('go');
    return Promise.all(dones);
  };
  const rss0 = process.memoryUsage().rss;
  const w1 = await start(1);
  const rssOne = process.memoryUsage().rss;
  const w2 = await start(2);
  const rssTwo = process.memoryUsage().rss;
  const workersInfo = { tokenizerInfoMs: [w1.ready.infoMs, w2.ready.infoMs], wasmMBPerWorkerAfterTokenizerInfo: [w1.ready.wasmMB, w2.ready.wasmMB], processRssGrowthMB: { firstWorker: (rssOne - rss0) / MB, secondWorker: (rssTwo - rssOne) / MB } };
  const parallel = await stallDuring(() => runAll([w1, w2]));
  const wall = parallel.durationMs;
  await w1.w.terminate();
  await w2.w.terminate();
  // Same 8 grammars, one worker in turn.
  const w3 = await start(3);
  const seqSchemas = [...schemas(1), ...schemas(2)];
  await w3.w.terminate();
  const w4 = new Worker(SELF, { workerData: { role: 'compile', encoded: vocab.encoded, stopIds: vocab.stopIds, schemas: seqSchemas } });
  await new Promise((res) => w4.once('message', res));
  const serial = await runAll([{ w: w4 }]);
  await w4.terminate();
  report.workers = {
    ...workersInfo,
    twoWorkersEachCompiling4: { wallMs: wall, perWorker: parallel.value.map((d) => ({ wallMs: d.wallMs, compileMs: d.times })), mainThreadMaxStallMs: parallel.maxStallMs },
    oneWorkerCompiling8: { wallMs: serial[0]!.wallMs, compileMs: serial[0]!.times },
  };
  log(`two workers x 4 compiles: ${wall.toFixed(0)} ms wall (main-thread longest stall ${parallel.maxStallMs.toFixed(1)} ms); one worker x 8: ${serial[0]!.wallMs.toFixed(0)} ms`);

  // 4. Cancelling a long compile: terminate the worker 1 s into the typical schema's compile.
  const w5 = new Worker(SELF, { workerData: { role: 'compile', encoded: vocab.encoded, stopIds: vocab.stopIds, schemas: [JSON.stringify(typicalSchema())] } });
  await new Promise((res) => w5.once('message', res));
  w5.postMessage('go');
  await sleep(1000);
  const tk = now();
  const finished = await Promise.race([w5.terminate().then(() => 'terminated'), new Promise<string>((res) => w5.once('message', () => res('compile finished first')))]);
  report.cancel = { result: finished, terminateMs: now() - tk, note: 'worker.terminate() 1 s into an ~11 s compile' };
  log(`terminate during compile: ${finished} after ${(now() - tk).toFixed(0)} ms`);

  console.log(JSON.stringify(report, null, 2));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(report, null, 2));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (isMainThread) await main();
  else if ((workerData as { role?: string }).role === 'probe') await probeWorker();
  else await workerMain();
}
