import { parentPort, workerData } from 'node:worker_threads';
import type { CompiledGrammar, GrammarCompiler, GrammarMatcher } from '@mlc-ai/web-xgrammar';
import { Constraint, constraintKey } from './constraint.js';
import type { GrammarReply, GrammarRequest } from './grammarService.js';
import { SECOND_BYTE, readGrammarVocab } from './vocab.js';
import { jsonSchemaEBNF } from './jsonSchemaGrammar.js';
import { explained, loadXgrammar, xgrammar } from './xgrammar.js';

/**
 * The grammar thread: compiles constraints (cached by their text) and keeps one matcher per
 * constrained sequence, answering each step with the next token mask. Its own thread, so that
 * compiling (synchronous WebAssembly, up to seconds for a large schema) never holds up the
 * engine's steps, and a mask is computed while the model runs the step it is for.
 */
const port = parentPort!;
const { modelDir, vocabSize } = workerData as { modelDir: string; vocabSize: number };
// Read here, not on the engine thread: tokenizer.json and the per-token byte analysis take a while.
const vocab = readGrammarVocab(modelDir, vocabSize);
/**
 * Compiled grammars kept (by key, least recently used dropped first). A typical schema's grammar
 * takes about 18 MB of WebAssembly memory at a 152k vocabulary (measured), and that memory never
 * shrinks (freed memory is reused), so few are kept.
 */
const CACHE_SIZE = 16;

type Compiler = GrammarCompiler;
const xg = xgrammar();
let compilerReady: Promise<Compiler> | null = null;
function compiler(): Promise<Compiler> {
  compilerReady ??= xg.TokenizerInfo.createTokenizerInfo(vocab.encoded, vocab.vocabType, vocab.prependSpace, vocabSize, []).then((info) => xg.GrammarCompiler.createGrammarCompiler(info, false));
  return compilerReady;
}

/**
 * A second instance, with a vocabulary of single bytes, that compiles each new grammar first:
 * xgrammar aborts its WebAssembly call on a bad grammar, after which that instance misbehaves
 * (measured: the next matcher it makes aborts too). A bad grammar only ever breaks this one,
 * which is then replaced; the instance holding the sequences' matchers only sees good ones.
 */
let checker: Promise<Compiler> | null = null;
function checkerCompiler(): Promise<Compiler> {
  if (!checker) {
    const x = loadXgrammar();
    const bytes = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
    checker = x.TokenizerInfo.createTokenizerInfo(bytes, 'raw', false, 256, []).then((info) => x.GrammarCompiler.createGrammarCompiler(info, false));
  }
  return checker;
}

/** What a constraint compiles from: EBNF text or a structural tag (one conversion for both instances). */
type GrammarSource = { ebnf: string } | { tag: Record<string, unknown> };

async function grammarSource(c: Constraint): Promise<GrammarSource> {
  switch (c.kind) {
    case 'json_schema':
    case 'json_object': {
      // One line, no spaces: output as compact as OpenAI's strict mode writes it, so a model
      // cannot spend its tokens on whitespace.
      const schema = c.kind === 'json_schema' ? JSON.parse(c.schema) : { type: 'object' };
      return { ebnf: await jsonSchemaEBNF(schema, { separators: [',', ':'], strict: c.kind === 'json_schema' && c.strict, where: 'json_schema', param: 'response_format' }) };
    }
    case 'regex':
      return { tag: { type: 'structural_tag', format: { type: 'regex', pattern: c.pattern } } };
    case 'ebnf':
      return { ebnf: c.grammar };
    case 'structural_tag':
      return { tag: JSON.parse(c.tag) as Record<string, unknown> };
  }
}

function compileWith(comp: Compiler, src: GrammarSource): Promise<CompiledGrammar> {
  return 'ebnf' in src ? comp.compileGrammar(src.ebnf, 'root') : comp.compileStructuralTag(src.tag);
}

/**
 * After a token ending in a lead byte whose next byte is narrower than any continuation byte (E0,
 * ED, F0, F4), tokens starting with a continuation byte it does not allow are taken out of the
 * mask: xgrammar's byte-level matching would let them form an overlong or surrogate sequence.
 */
function narrowAfterLead(mask: Int32Array, lead: number | undefined): void {
  const allowed = lead === undefined ? undefined : SECOND_BYTE[lead];
  if (!allowed) return;
  for (let b = 0x80; b < 0xc0; b++) {
    if (b >= allowed[0] && b <= allowed[1]) continue;
    for (const id of vocab.byFirstContinuation[b - 0x80]!) mask[id >> 5] = mask[id >> 5]! & ~(1 << (id & 31));
  }
}

const cache = new Map<string, CompiledGrammar>();
const matchers = new Map<string, GrammarMatcher>();

async function compile(c: Constraint): Promise<CompiledGrammar> {
  const key = constraintKey(c);
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const src = await grammarSource(c);
  try {
    const comp = await checkerCompiler();
    const test = await explained(() => compileWith(comp, src));
    test.dispose();
  } catch (e) {
    checker = null;
    throw e;
  }
  const g = await explained(async () => compileWith(await compiler(), src));
  cache.set(key, g);
  if (cache.size > CACHE_SIZE) {
    const [oldest, old] = cache.entries().next().value as [string, CompiledGrammar];
    cache.delete(oldest);
    // Matchers made from it keep their own reference to the grammar.
    old.dispose();
  }
  return g;
}

function message(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).trim() || 'the grammar could not be compiled';
}

async function handle(m: GrammarRequest): Promise<GrammarReply | null> {
  switch (m.op) {
    case 'compile':
      await compile(m.constraint);
      return { rid: m.rid, ok: true };
    case 'open': {
      const g = await compile(m.constraint);
      matchers.get(m.seq)?.dispose();
      matchers.set(m.seq, await xg.GrammarMatcher.createGrammarMatcher(g, m.stopIds, false, 0));
      return { rid: m.rid, ok: true };
    }
    case 'next': {
      const matcher = matchers.get(m.seq);
      if (!matcher) throw new Error(`no grammar state for sequence ${m.seq}`);
      if (m.token >= 0 && !matcher.acceptToken(m.token)) throw new Error(`token ${m.token} breaks the grammar`);
      if (matcher.isTerminated()) return { rid: m.rid, ok: true, terminated: true };
      const mask = await matcher.getNextTokenBitmask();
      if (m.token >= 0) narrowAfterLead(mask, vocab.leadAtEnd[m.token]);
      return { rid: m.rid, ok: true, terminated: false, mask };
    }
    case 'close':
      matchers.get(m.seq)?.dispose();
      matchers.delete(m.seq);
      return null;
  }
}

// Requests are handled one at a time, in order: a sequence's steps must not overtake each other.
let chain: Promise<void> = Promise.resolve();
port.on('message', (m: GrammarRequest) => {
  chain = chain.then(async () => {
    try {
      const r = await handle(m);
      if (r) port.postMessage(r, r.ok && r.mask ? [r.mask.buffer as ArrayBuffer] : []);
    } catch (e) {
      if ('rid' in m) port.postMessage({ rid: m.rid, ok: false, error: message(e) } satisfies GrammarReply);
    }
  });
});
