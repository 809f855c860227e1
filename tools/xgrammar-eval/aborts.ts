/**
 * What a failed compile leaves behind. xgrammar reports a bad schema / regex / grammar by
 * calling abort() in the WebAssembly module: the JS caller gets a RuntimeError("Aborted()"), the
 * message goes to stderr, and the C++ stack is never unwound. This script repeats one kind of
 * failing compile in a fresh module (one worker thread per kind), and after each failure
 * compiles a valid schema and computes a mask, until that fails or 300 failures have passed;
 * it reports the failure count at which the module stopped working, how it failed, and the
 * WebAssembly memory and RSS along the way.
 *
 * Run: npm run build && node dist/tools/xgrammar-eval/aborts.js [--big] [--json OUT]
 *   --big: the 151,936-row synthetic vocabulary instead of a 10-token one
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { MB, captureOutput, fatalMessage, wasmBytes, xg } from './common.js';
import { QWEN2VL_LOGITS, buildVocab } from './vocab.js';

const SELF = fileURLToPath(import.meta.url);
const LIMIT = 300;

export const KINDS = ['json schema: unsupported type', 'json schema: invalid JSON', 'regex: lookahead', 'ebnf: undefined rule', 'Grammar.fromJSONSchema (no compiler)', 'getNextTokenBitmask after termination'] as const;
type Kind = (typeof KINDS)[number];

interface Result { kind: Kind; failuresBeforeBreak: number | null; symptom: string | null; samples: { failures: number; wasmMB: number; rssMB: number }[] }

async function workerMain(): Promise<void> {
  const { kind, big } = workerData as { kind: Kind; big: boolean };
  const x = xg();
  const vocab = big ? buildVocab({ blankSpecials: true }).encoded : ['a', 'b', 'c', '"', '{', '}', ':', ',', '1', '<|im_end|>'];
  const size = big ? QWEN2VL_LOGITS : vocab.length;
  const stop = big ? [151_643, 151_645] : [vocab.length - 1];
  const info = await x.TokenizerInfo.createTokenizerInfo(vocab, 'byte_level', false, size, stop);
  const c = await x.GrammarCompiler.createGrammarCompiler(info, false);
  const terminated = await (async () => {
    const g = await c.compileJSONSchema('{"type":"integer","maximum":5}', false, -1, [',', ':'], true);
    return g;
  })();
  const bad: Record<Kind, () => Promise<unknown>> = {
    'json schema: unsupported type': () => c.compileJSONSchema('{"type":"foo"}'),
    'json schema: invalid JSON': () => c.compileJSONSchema('{'),
    'regex: lookahead': () => c.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: '(?=a)a' } }),
    'ebnf: undefined rule': () => c.compileGrammar('root ::= foo'),
    'Grammar.fromJSONSchema (no compiler)': () => x.Grammar.fromJSONSchema('{"type":"foo"}'),
    'getNextTokenBitmask after termination': async () => {
      const m = await x.GrammarMatcher.createGrammarMatcher(terminated, stop);
      if (!m.acceptToken(big ? 20 : 8)) throw new Error('digit refused'); // '5' / '1'
      m.acceptToken(stop[0]!);
      try { return await m.getNextTokenBitmask(); } finally { m.dispose(); }
    },
  };
  const result: Result = { kind, failuresBeforeBreak: null, symptom: null, samples: [] };
  for (let i = 1; i <= LIMIT; i++) {
    await captureOutput(bad[kind]);
    const check = await captureOutput(async () => {
      const g = await c.compileJSONSchema('{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}', false, -1, [',', ':'], true);
      const m = await x.GrammarMatcher.createGrammarMatcher(g, stop);
      const mask = await m.getNextTokenBitmask();
      m.dispose();
      g.dispose();
      if (!mask.some((w) => w !== 0)) throw new Error('empty mask');
      return true;
    });
    if (i === 1 || i % 25 === 0 || !check.ok) result.samples.push({ failures: i, wasmMB: wasmBytes() / MB, rssMB: process.memoryUsage().rss / MB });
    if (!check.ok) {
      result.failuresBeforeBreak = i;
      result.symptom = `${check.error}${check.stderr ? ` | stderr: ${fatalMessage(check.stderr)}` : ''}`.slice(0, 300);
      break;
    }
  }
  parentPort!.postMessage(result);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const big = args.includes('--big');
  const jsonOut = (() => { const i = args.indexOf('--json'); return i >= 0 ? args[i + 1] : undefined; })();
  const results: Result[] = [];
  for (const kind of KINDS) {
    const w = new Worker(SELF, { workerData: { kind, big } });
    const r = await new Promise<Result>((res, rej) => {
      w.once('message', res);
      w.once('error', (e) => res({ kind, failuresBeforeBreak: -1, symptom: `worker crashed: ${e.message}`, samples: [] }));
      w.once('exit', (code) => { if (code !== 0) rej(new Error(`worker exit ${code}`)); });
    });
    await w.terminate();
    results.push(r);
    const last = r.samples[r.samples.length - 1];
    console.log(`${kind}: ${r.failuresBeforeBreak === null ? `still working after ${LIMIT} failures` : `broken after ${r.failuresBeforeBreak} failures: ${r.symptom}`}; WASM ${last?.wasmMB.toFixed(0)} MB`);
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ big, results }, null, 2));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (isMainThread) await main();
  else await workerMain();
}
