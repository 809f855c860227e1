/**
 * xgrammar speed and memory at Qwen2-VL's vocabulary size (151,646 tokens, 151,936 logits),
 * on the synthetic byte-level vocabulary of vocab.ts:
 *   - TokenizerInfo and GrammarCompiler creation;
 *   - compile time of (i) a typical response_format schema, (ii) json_object ({"type":"object"},
 *     compact), (iii) a regex, (iv) a 31-rule EBNF, each uncached (a compiler with its cache
 *     off) and through a caching compiler (first compile, then the same text again); the EBNF
 *     also with its bounded repetitions {m,n} written as * / + (ebnf_unbounded);
 *   - per step getNextTokenBitmask() and acceptToken() time while a matcher walks a random valid
 *     output (each step a random allowed token, except that for JSON one step in six picks among
 *     allowed tokens that can end the current value: holding a quote inside a string, holding
 *     a quote , } or ] elsewhere, so strings and numbers end; the stop token is taken when
 *     the mask allows it, at once for JSON and with probability 0.3 for regex/EBNF), split by
 *     position: inside a JSON string vs structural, and by how many tokens the mask allows;
 *   - compile time against string maxLength, array maxItems, enum size and vocabulary size;
 *   - memory: process RSS and WebAssembly memory after TokenizerInfo, after 1 and 50 compiled
 *     grammars, per matcher, after disposal and ClearCache, and what repeated successful calls
 *     leave behind (failed compiles: aborts.ts).
 *
 * Run: npm run build && node --expose-gc dist/tools/xgrammar-eval/speed.js [--walks 20] [--max-steps 256]
 *        [--only compile,scan,walks,memory,leaks] [--json OUT]   (these sections: about 35 minutes)
 *      node --expose-gc dist/tools/xgrammar-eval/speed.js --only matchermem   (per-matcher memory, own process)
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MB, allowedIds, fmtStats, gc, hardware, isAllowed, log, now, rng, stats, wasmBytes, xg,
  type CompiledGrammar, type GrammarCompiler, type TokenizerInfo, type XG,
} from './common.js';
import { EBNF_31, EBNF_31_UNBOUNDED, JSON_OBJECT_SCHEMA, REGEX, typicalSchema } from './grammars.js';
import { IM_END, QWEN2VL_LOGITS, buildVocab, decodeToken } from './vocab.js';

export type GrammarName = 'schema' | 'json_object' | 'regex' | 'ebnf' | 'ebnf_unbounded';
export const GRAMMARS: GrammarName[] = ['schema', 'json_object', 'regex', 'ebnf', 'ebnf_unbounded'];

const COMPACT: [string, string] = [',', ':'];

export async function compile(compiler: GrammarCompiler, name: GrammarName, variant = 0): Promise<CompiledGrammar> {
  switch (name) {
    case 'schema': return compiler.compileJSONSchema(JSON.stringify(typicalSchema(variant)), false, -1, COMPACT, true);
    case 'json_object': return compiler.compileJSONSchema(JSON_OBJECT_SCHEMA, false, -1, COMPACT, true);
    case 'regex': return compiler.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: REGEX } });
    case 'ebnf': return compiler.compileGrammar(EBNF_31);
    case 'ebnf_unbounded': return compiler.compileGrammar(EBNF_31_UNBOUNDED);
  }
}

export interface StepSample { step: number; maskMs: number; acceptMs: number; allowed: number; inString: boolean | null }

export interface WalkResult { steps: StepSample[]; completed: number; capped: number; outputs: string[] }

/** JSON string state of a text prefix (null for non-JSON grammars). */
function jsonScanner() {
  let inString = false;
  let escape = false;
  return {
    get inString() { return inString; },
    feed(text: string) {
      for (const ch of text) {
        if (inString) {
          if (escape) escape = false;
          else if (ch === '\\') escape = true;
          else if (ch === '"') inString = false;
        } else if (ch === '"') inString = true;
      }
    },
  };
}

export async function walk(x: XG, compiled: CompiledGrammar, name: GrammarName, decoded: string[], delimiter: Uint8Array, opts: { walks: number; maxSteps: number; seed: number; stopIds: number[] }): Promise<WalkResult> {
  const random = rng(opts.seed);
  const json = name === 'schema' || name === 'json_object';
  const result: WalkResult = { steps: [], completed: 0, capped: 0, outputs: [] };
  for (let w = 0; w < opts.walks; w++) {
    const matcher = await x.GrammarMatcher.createGrammarMatcher(compiled, opts.stopIds);
    const scan = jsonScanner();
    let text = '';
    let done = false;
    for (let step = 0; step < opts.maxSteps && !done; step++) {
      const t0 = now();
      const mask = await matcher.getNextTokenBitmask();
      const maskMs = now() - t0;
      const ids = allowedIds(mask, QWEN2VL_LOGITS);
      let pick: number;
      const stopAllowed = opts.stopIds.find((id) => isAllowed(mask, id));
      let pool = ids.filter((id) => !opts.stopIds.includes(id));
      if (stopAllowed !== undefined && (json || pool.length === 0 || random() < 0.3)) {
        pick = stopAllowed;
      } else {
        // One step in six picks among allowed tokens that can end the current value: inside a JSON
        // string those holding a quote, elsewhere those holding , } ] or a quote (so numbers end).
        if (json && random() < 1 / 6) {
          const closing = pool.filter((id) => (scan.inString ? delimiter[id]! & 1 : delimiter[id]!) !== 0);
          if (closing.length > 0) pool = closing;
        }
        if (pool.length === 0) throw new Error(`no token allowed at step ${step} of ${name}: ${JSON.stringify(text)}`);
        pick = pool[Math.floor(random() * pool.length)]!;
      }
      const t1 = now();
      const ok = matcher.acceptToken(pick);
      const acceptMs = now() - t1;
      if (!ok) throw new Error(`acceptToken refused a token the mask allowed (${pick}) in ${name}`);
      result.steps.push({ step, maskMs, acceptMs, allowed: ids.length, inString: json ? scan.inString : null });
      if (opts.stopIds.includes(pick)) { done = true; result.completed++; if (!matcher.isTerminated()) throw new Error('stop token accepted but matcher not terminated'); break; }
      const piece = decoded[pick]!;
      text += piece;
      if (json) scan.feed(piece);
    }
    if (!done) result.capped++;
    if (result.outputs.length < 3) result.outputs.push(text.slice(0, 400));
    matcher.dispose();
  }
  return result;
}

function median(xs: number[]): number { return stats(xs).median; }

interface MemPoint { label: string; rssMB: number; wasmMB: number; heapMB: number }

function mem(label: string): MemPoint {
  gc();
  const m = process.memoryUsage();
  return { label, rssMB: m.rss / MB, wasmMB: wasmBytes() / MB, heapMB: m.heapUsed / MB };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, d: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : d; };
  const jsonOut = (() => { const i = args.indexOf('--json'); return i >= 0 ? args[i + 1] : undefined; })();
  const walks = opt('--walks', 20);
  const maxSteps = opt('--max-steps', 256);
  const seed = opt('--seed', 1);
  const onlyArg = (() => { const i = args.indexOf('--only'); return i >= 0 ? args[i + 1]!.split(',') : undefined; })();
  const run = (section: string) => !onlyArg || onlyArg.includes(section);
  const report: Record<string, unknown> = { hardware: hardware(), gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function' };
  log(report.hardware as string);
  const memory: MemPoint[] = [];
  memory.push(mem('start (Node, nothing loaded)'));

  const x = xg();
  // Instantiate the module with a tiny tokenizer so the baseline includes the WebAssembly instance.
  (await x.TokenizerInfo.createTokenizerInfo(['a', 'b'], 'byte_level', false, 2, [1])).dispose();
  memory.push(mem('module instantiated'));

  const vocab = buildVocab({ blankSpecials: true });
  report.vocab = { buildMs: Math.round(vocab.buildMs), size: vocab.encoded.length, tokens: vocab.tokens, summary: vocab.summary };
  memory.push(mem('synthetic vocab built (JS strings)'));
  const decoded = vocab.encoded.map(decodeToken);
  const delimiter = new Uint8Array(decoded.length);
  // bit 0: holds a quote; bit 1: holds , } or ]
  decoded.forEach((t, i) => { delimiter[i] = (t.includes('"') ? 1 : 0) | (/[,}\]]/.test(t) ? 2 : 0); });

  let t0 = now();
  const info: TokenizerInfo = await x.TokenizerInfo.createTokenizerInfo(vocab.encoded, 'byte_level', false, QWEN2VL_LOGITS, vocab.stopIds);
  const tokenizerInfoMs = now() - t0;
  memory.push(mem('TokenizerInfo (151,936)'));
  log(`TokenizerInfo ${tokenizerInfoMs.toFixed(0)} ms`);

  t0 = now();
  const uncached = await x.GrammarCompiler.createGrammarCompiler(info, false);
  const compilerMs = now() - t0;
  const cachedCompiler = await x.GrammarCompiler.createGrammarCompiler(info, true);
  memory.push(mem('2 GrammarCompilers'));
  report.setup = { tokenizerInfoMs, compilerMs };

  // ---- compile times ----
  const compileTimes: Record<string, unknown> = {};
  for (const name of run('compile') ? GRAMMARS : []) {
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t = now();
      const g = await compile(uncached, name);
      times.push(now() - t);
      g.dispose();
    }
    const tMiss = now();
    const g1 = await compile(cachedCompiler, name);
    const cacheMiss = now() - tMiss;
    const hits: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t = now();
      const g2 = await compile(cachedCompiler, name);
      hits.push(now() - t);
      g2.dispose();
    }
    g1.dispose();
    compileTimes[name] = { uncachedMs: stats(times), cachedFirstMs: cacheMiss, cachedHitMs: stats(hits) };
    log(`compile ${name}: uncached median ${median(times).toFixed(1)} ms (runs ${times.map((v) => v.toFixed(0)).join(', ')}), cache miss ${cacheMiss.toFixed(1)} ms, hit median ${median(hits).toFixed(3)} ms`);
  }
  report.compile = compileTimes;

  // ---- what drives compile time ----
  if (run('scan')) {
    const scan: Record<string, number> = {};
    const timeSchema = async (label: string, schema: unknown, compiler = uncached) => {
      const t = now();
      const g = await compiler.compileJSONSchema(JSON.stringify(schema), false, -1, COMPACT, true);
      scan[label] = now() - t;
      g.dispose();
      log(`compile ${label}: ${scan[label]!.toFixed(0)} ms`);
    };
    await timeSchema('{"type":"string"}', { type: 'string' });
    for (const n of [8, 16, 32, 64, 128, 256]) await timeSchema(`string maxLength ${n}`, { type: 'string', maxLength: n });
    await timeSchema('string minLength 64', { type: 'string', minLength: 64 });
    await timeSchema('string format email', { type: 'string', format: 'email' });
    await timeSchema('string format date-time', { type: 'string', format: 'date-time' });
    await timeSchema('string pattern ^[0-9]{5}$', { type: 'string', pattern: '^[0-9]{5}$' });
    await timeSchema('string pattern ^[a-z]{1,64}$', { type: 'string', pattern: '^[a-z]{1,64}$' });
    for (const n of [5, 50]) await timeSchema(`array of integers maxItems ${n}`, { type: 'array', items: { type: 'integer' }, maxItems: n });
    for (const n of [10, 100, 1000]) await timeSchema(`enum of ${n} strings`, { enum: Array.from({ length: n }, (_, i) => `value_${i}`) });
    await timeSchema('integer minimum 0 maximum 130', { type: 'integer', minimum: 0, maximum: 130 });
    await timeSchema('object with 20 required string properties', { type: 'object', properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`field_${i}`, { type: 'string' }])), required: Array.from({ length: 20 }, (_, i) => `field_${i}`) });
    await timeSchema('object with 20 optional string properties', { type: 'object', properties: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`field_${i}`, { type: 'string' }])) });
    // The same bounded string against a 32,000-token prefix of the vocabulary.
    const smallInfo = await x.TokenizerInfo.createTokenizerInfo(vocab.encoded.slice(0, 32_000), 'byte_level', false, 32_000, []);
    const smallCompiler = await x.GrammarCompiler.createGrammarCompiler(smallInfo, false);
    await timeSchema('string maxLength 64 (32,000-token vocabulary)', { type: 'string', maxLength: 64 }, smallCompiler);
    await timeSchema('typical schema (32,000-token vocabulary)', typicalSchema(), smallCompiler);
    smallCompiler.dispose();
    smallInfo.dispose();
    report.compileScan = scan;
  }
  memory.push(mem('after the compile-time runs (cache holds 4 grammars)'));

  // ---- walks ----
  const walksReport: Record<string, unknown> = {};
  for (const name of run('walks') ? GRAMMARS : []) {
    const compiled = await compile(uncached, name);
    const r = await walk(x, compiled, name, decoded, delimiter, { walks, maxSteps, seed: seed + GRAMMARS.indexOf(name), stopIds: vocab.stopIds });
    compiled.dispose();
    const all = r.steps.map((s) => s.maskMs);
    const inStr = r.steps.filter((s) => s.inString === true).map((s) => s.maskMs);
    const structural = r.steps.filter((s) => s.inString === false).map((s) => s.maskMs);
    const byAllowed = (lo: number, hi: number) => stats(r.steps.filter((s) => s.allowed >= lo && s.allowed < hi).map((s) => s.maskMs));
    const entry = {
      walks, completed: r.completed, cappedAt: r.completed === walks ? undefined : maxSteps, capped: r.capped, steps: r.steps.length,
      maskMs: stats(all), maskInStringMs: stats(inStr), maskStructuralMs: stats(structural),
      maskSteps0to31Ms: stats(r.steps.filter((s) => s.step < 32).map((s) => s.maskMs)),
      maskSteps32upMs: stats(r.steps.filter((s) => s.step >= 32).map((s) => s.maskMs)),
      maskByAllowed: { 'allowed < 100': byAllowed(0, 100), '100 ≤ allowed < 10k': byAllowed(100, 10_000), 'allowed ≥ 10k': byAllowed(10_000, Infinity) },
      acceptMs: stats(r.steps.map((s) => s.acceptMs)),
      sampleOutputs: r.outputs,
    };
    walksReport[name] = entry;
    log(`walk ${name}: ${r.steps.length} steps, ${r.completed}/${walks} completed; mask ${fmtStats(entry.maskMs)}; in-string ${fmtStats(entry.maskInStringMs)}; structural ${fmtStats(entry.maskStructuralMs)}; accept ${fmtStats(entry.acceptMs, 4)}`);
  }
  report.walks = walksReport;

  // ---- memory: grammars and matchers ----
  if (run('memory')) {
    memory.push(mem('before the memory runs'));
    const held: CompiledGrammar[] = [await compile(cachedCompiler, 'schema', 1)];
    memory.push(mem('+1 compiled typical schema'));
    for (let v = 2; v <= 50; v++) held.push(await compile(cachedCompiler, 'schema', v));
    memory.push(mem('+50 compiled typical schemas (distinct, held)'));
    const matchers = [];
    for (let i = 0; i < 200; i++) matchers.push(await x.GrammarMatcher.createGrammarMatcher(held[i % 50]!, vocab.stopIds));
    memory.push(mem('+200 fresh matchers'));
    // Walk each matcher 40 steps (stack state and rollback history grow).
    const random = rng(99);
    for (const m of matchers) {
      for (let s = 0; s < 40; s++) {
        const mask = await m.getNextTokenBitmask();
        const ids = allowedIds(mask, QWEN2VL_LOGITS).filter((id) => !vocab.stopIds.includes(id));
        if (ids.length === 0) break;
        m.acceptToken(ids[Math.floor(random() * ids.length)]!);
      }
    }
    memory.push(mem('200 matchers after 40 steps each'));
    for (const m of matchers) m.dispose();
    memory.push(mem('matchers disposed'));
    for (const g of held) g.dispose();
    memory.push(mem('grammars disposed (the compiler cache still holds them)'));
    (cachedCompiler.handle as { ClearCache: () => void }).ClearCache();
    memory.push(mem('after compiler.handle.ClearCache()'));
    for (let v = 51; v <= 60; v++) (await compile(uncached, 'schema', v)).dispose();
    memory.push(mem('10 more typical schemas compiled and disposed after ClearCache'));
  }

  // Per-matcher memory, measured in its own process (--only matchermem): the WebAssembly memory
  // is a high-water mark, so growth only shows in a module that has not been larger before.
  if (onlyArg?.includes('matchermem')) {
    const perMatcher: Record<string, unknown> = {};
    for (const name of ['json_object', 'schema'] as GrammarName[]) {
      const g = await compile(uncached, name);
      const a = mem(`${name}: compiled`);
      const ms = [];
      for (let i = 0; i < 100; i++) ms.push(await x.GrammarMatcher.createGrammarMatcher(g, vocab.stopIds));
      const b = mem(`${name}: +100 fresh matchers`);
      const random = rng(5);
      for (const m of ms) {
        for (let s = 0; s < 40; s++) {
          const mask = await m.getNextTokenBitmask();
          const ids = allowedIds(mask, QWEN2VL_LOGITS).filter((id) => !vocab.stopIds.includes(id));
          if (ids.length === 0) break;
          m.acceptToken(ids[Math.floor(random() * ids.length)]!);
        }
      }
      const c = mem(`${name}: 100 matchers after up to 40 random steps`);
      memory.push(a, b, c);
      perMatcher[name] = { freshKB: ((b.wasmMB - a.wasmMB) * 1024) / 100, freshRssKB: ((b.rssMB - a.rssMB) * 1024) / 100, after40StepsKB: ((c.wasmMB - a.wasmMB) * 1024) / 100, after40StepsRssKB: ((c.rssMB - a.rssMB) * 1024) / 100 };
      log(`${name}: per matcher fresh ${(perMatcher[name] as { freshKB: number }).freshKB.toFixed(0)} KB, after 40 steps ${(perMatcher[name] as { after40StepsKB: number }).after40StepsKB.toFixed(0)} KB (WASM growth / 100)`);
      for (const m of ms) m.dispose();
      g.dispose();
    }
    report.perMatcher = perMatcher;
  }

  // Leaks of calls that succeed (failed compiles: see aborts.ts).
  const leak: Record<string, unknown> = {};
  if (run('leaks')) {
    const small = await compile(uncached, 'regex');
    const measureLeak = async (label: string, n: number, fn: () => Promise<void>) => {
      for (let i = 0; i < 20; i++) await fn();
      const a = mem(label);
      for (let i = 0; i < n; i++) await fn();
      const b = mem(label);
      leak[label] = { n, wasmGrowthMB: b.wasmMB - a.wasmMB, rssGrowthMB: b.rssMB - a.rssMB, rssPerCallKB: ((b.rssMB - a.rssMB) * 1024) / n };
      log(`${label}: ${n} calls, WASM +${(b.wasmMB - a.wasmMB).toFixed(1)} MB, RSS +${(b.rssMB - a.rssMB).toFixed(1)} MB`);
    };
    await measureLeak('createGrammarMatcher + dispose', 5000, async () => { (await x.GrammarMatcher.createGrammarMatcher(small, vocab.stopIds)).dispose(); });
    await measureLeak('createGrammarMatcher + getNextTokenBitmask + dispose', 5000, async () => { const m = await x.GrammarMatcher.createGrammarMatcher(small, vocab.stopIds); await m.getNextTokenBitmask(); m.dispose(); });
    await measureLeak('compileGrammar(31-rule EBNF string) + dispose', 200, async () => { (await uncached.compileGrammar(EBNF_31)).dispose(); });
    await measureLeak('compileJSONSchema(json_object) + dispose', 200, async () => { (await compile(uncached, 'json_object')).dispose(); });
    small.dispose();
  }
  report.leaks = leak;
  memory.push(mem('end'));
  report.memory = memory;
  report.peakRssMB = (process.resourceUsage().maxRSS * 1024) / MB;

  console.log(memoryTable(memory));
  console.log(`peak RSS ${report.peakRssMB as number} MB`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(report, null, 2));
}

function memoryTable(points: MemPoint[]): string {
  const lines = ['| point | RSS MB | WASM memory MB | JS heap MB |', '|---|---|---|---|'];
  for (const p of points) lines.push(`| ${p.label} | ${p.rssMB.toFixed(0)} | ${p.wasmMB.toFixed(0)} | ${p.heapMB.toFixed(0)} |`);
  return lines.join('\n');
}



if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
