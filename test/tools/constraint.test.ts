import { schemaViolation } from '../helpers/jsonSchemaValidate.js';
import { InvalidRequestError } from '../../src/errors.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xgrammar } from '../../src/structured/xgrammar.js';
import { integerRangeEBNF } from '../../src/structured/numberRanges.js';
import { toolCallStructuralTag } from '../../src/tools/constraint.js';
import { toolCallParser } from '../../src/tools/registry.js';
import type { ToolCallFormat, ToolFunction } from '../../src/tools/types.js';
import { ToolRequestError } from '../../src/tools/validate.js';
import { rng } from './helpers.js';

const xg = xgrammar();
const FORMATS: ToolCallFormat[] = ['qwen25', 'llama3', 'mistral'];

const TOOLS: ToolFunction[] = [
  {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', minLength: 1, maxLength: 8, description: 'City name' },
        unit: { enum: ['c', 'f'] },
        days: { type: 'integer', minimum: 1, maximum: 14 },
      },
      required: ['city'],
      additionalProperties: false,
    },
  },
  {
    name: 'search',
    parameters: {
      type: 'object',
      properties: {
        q: { type: 'string', maxLength: 6 },
        tags: { type: 'array', items: { type: 'string', maxLength: 3 }, minItems: 1, maxItems: 3 },
        opts: {
          type: 'object',
          properties: { exact: { type: 'boolean' }, limit: { type: 'integer', minimum: -5, maximum: 200 }, score: { type: 'number' } },
          required: ['exact'],
          additionalProperties: false,
        },
        level: { type: 'integer', minimum: 10 },
        code: { type: 'string', pattern: '^[A-Z].[^x]{0,2}$' },
        below: { type: ['integer', 'null'], exclusiveMaximum: -3 },
      },
      required: ['q', 'opts'],
      additionalProperties: false,
    },
  },
  { name: 'get_time' },
];

/** The text of a call as the constraint has it written. */
function callText(format: ToolCallFormat, name: string, args: string): string {
  if (format === 'qwen25') return `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`;
  if (format === 'llama3') return `{"name": "${name}", "parameters": ${args}}`;
  return `{"name": "${name}", "arguments": ${args}}`;
}

function output(format: ToolCallFormat, calls: [string, string][]): string {
  const texts = calls.map(([n, a]) => callText(format, n, a));
  if (format === 'qwen25') return texts.join('\n');
  if (format === 'llama3') return texts.join('; ');
  return `[TOOL_CALLS] [${texts.join(', ')}]`;
}

async function grammarOf(tag: Record<string, unknown>) {
  return xg.Grammar.fromStructuralTag(tag);
}

test('the structural tag is plain JSON and compiles for every format, choice and parallel setting', async () => {
  const info = await xg.TokenizerInfo.createTokenizerInfo(vocab().encoded, 'byte_level', false, vocab().encoded.length, [vocab().stop]);
  const compiler = await xg.GrammarCompiler.createGrammarCompiler(info);
  for (const format of FORMATS) {
    for (const choice of ['required', { name: 'search' }] as const) {
      for (const parallel of [false, true]) {
        const tag = await toolCallStructuralTag(format, TOOLS, choice, parallel);
        assert.deepEqual(JSON.parse(JSON.stringify(tag)), tag);
        assert.equal(tag.type, 'structural_tag');
        const compiled = await compiler.compileStructuralTag(tag);
        compiled.dispose();
      }
    }
  }
  compiler.dispose();
  info.dispose();
});

test('the grammar accepts well-formed calls and rejects wrong names, schema violations, loose whitespace and trailing text', async () => {
  const good = '{"city": "Paris", "days": 14}';
  for (const format of FORMATS) {
    const single = await grammarOf(await toolCallStructuralTag(format, TOOLS, 'required', false));
    const parallel = await grammarOf(await toolCallStructuralTag(format, TOOLS, 'required', true));
    const named = await grammarOf(await toolCallStructuralTag(format, TOOLS, { name: 'get_time' }, true));
    const accepts = async (g: typeof single, s: string) => xg.Testings.isGrammarAcceptString(g, s);
    const one = output(format, [['get_weather', good]]);
    const two = output(format, [
      ['get_weather', '{"city": "Oslo"}'],
      ['get_time', '{}'],
    ]);
    assert.equal(await accepts(single, one), true, `${format}: ${one}`);
    assert.equal(await accepts(single, output(format, [['get_time', '{}']])), true);
    assert.equal(await accepts(single, output(format, [['search', '{"q": "", "tags": ["a", "bc"], "opts": {"exact": true, "limit": -5, "score": -1.5e3}, "level": 99999, "below": null}']])), true);
    assert.equal(await accepts(single, output(format, [['search', '{"q": "x", "opts": {"exact": false}, "level": 10, "below": -4}']])), true);
    assert.equal(await accepts(single, two), false, `${format}: only one call without parallel calls`);
    assert.equal(await accepts(parallel, two), true, `${format}: ${two}`);
    assert.equal(await accepts(parallel, one), true);
    assert.equal(await accepts(named, output(format, [['get_time', '{}'], ['get_time', '{}']])), true);
    assert.equal(await accepts(named, one), false, `${format}: not the named function`);
    assert.equal(await accepts(named, output(format, [['get_time', '{"a": 1}']])), false, 'no parameters: only {}');
    const rejected: [string, string][] = [
      ['get_wether', good],
      ['get_weather', '{"city": "Paris", "days": 15}'],
      ['get_weather', '{"city": "Paris", "days": 0}'],
      ['get_weather', '{"city": "Paris", "days": 1.5}'],
      ['get_weather', '{"city": "Amsterdam!"}'],
      ['get_weather', '{"city": ""}'],
      ['get_weather', '{"city": "Paris", "unit": "k"}'],
      ['get_weather', '{"city": "Paris", "wind": true}'],
      ['get_weather', '{"days": 3}'],
      ['get_weather', '{"city":  "Paris"}'],
      ['get_weather', '{ "city": "Paris"}'],
      ['get_weather', '{"city": "Paris"}\n'],
      ['search', '{"q": "x", "tags": [], "opts": {"exact": true}}'],
      ['search', '{"q": "x", "tags": ["a", "b", "c", "d"], "opts": {"exact": true}}'],
      ['search', '{"q": "x", "opts": {"exact": true, "limit": 201}}'],
      ['search', '{"q": "x", "opts": {"exact": true}, "level": 9}'],
      ['search', '{"q": "x", "opts": {"exact": true}, "below": -3}'],
      ['search', '{"q": "x", "opts": {"exact": "yes"}}'],
    ];
    for (const [name, args] of rejected) assert.equal(await accepts(single, output(format, [[name, args]])), false, `${format}: ${name} ${args}`);
    assert.equal(await accepts(single, one + ' '), false, 'nothing after the call');
    assert.equal(await accepts(single, one + '\nThanks'), false);
    assert.equal(await accepts(single, 'Sure. ' + one), false, 'nothing before the call');
    assert.equal(await accepts(single, ''), false, 'a call is required');
    for (const g of [single, parallel, named]) g.dispose();
  }
});

test('choices that name nothing, schemas xgrammar would abort on and keywords it would ignore are rejected with a 400', async () => {
  await assert.rejects(toolCallStructuralTag('qwen25', TOOLS, { name: 'nope' }, false), (e: unknown) => e instanceof ToolRequestError && e.param === 'tool_choice' && /nope/.test(e.message));
  await assert.rejects(toolCallStructuralTag('qwen25', [], 'required', true), (e: unknown) => e instanceof ToolRequestError && e.param === 'tool_choice');
  const bad = async (parameters: Record<string, unknown>, pattern: RegExp) =>
    assert.rejects(toolCallStructuralTag('llama3', [{ name: 'f', parameters }], 'required', false), (e: unknown) => e instanceof InvalidRequestError && (e as InvalidRequestError).param === 'tools' && pattern.test(e.message));
  await bad({ type: 'object', properties: { a: { type: 'text' } } }, /function "f" parameters\.properties\.a: unsupported type "text"/);
  await bad({ type: 'object', properties: { a: { not: { type: 'string' } } } }, /function "f" parameters: keyword "not" \(at #\/properties\/a\/not\) is not supported/);
  await bad({ type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, /\$ref "#\/\$defs\/missing" points nowhere/);
  await bad({ type: 'object', properties: { a: { $ref: 'https://example.com/s.json' } } }, /only local \$ref/);
  await bad({ type: 'object', properties: { a: { type: 'integer', minimum: 5, maximum: 4 } } }, /no integer lies within/);
  await bad({ type: 'object', required: 'a' }, /parameters: required must be an array of strings/);
  await bad({ type: 'object', properties: [] }, /properties must be an object/);
  await bad({ type: 'object', properties: { a: { enum: [] } } }, /\.properties\.a: enum must be a non-empty array/);
  await bad({ type: 'object', properties: { a: { anyOf: [] } } }, /anyOf must be a non-empty array/);
  await bad({ type: 'object', properties: { a: { type: 'array', items: 5 } } }, /\.items: a schema must be an object or a boolean/);
  await bad({ type: 'object', properties: { a: { type: 'string', minLength: 3, maxLength: 2 } } }, /minLength is greater than maxLength/);
  await bad({ type: 'object', properties: { a: { type: 'string', maxLength: -1 } } }, /maxLength must be a non-negative integer/);
  await bad({ type: 'object', properties: { a: { type: 'string', pattern: '(' } } }, /pattern "\(" is not a valid regular expression/);
  // A resolvable $ref and a schema without "type" work.
  const tag = await toolCallStructuralTag('qwen25', [{ name: 'f', parameters: { properties: { a: { $ref: '#/$defs/n' } }, required: ['a'], $defs: { n: { type: 'integer', minimum: 0, maximum: 3 } } } }], 'required', false);
  const g = await grammarOf(tag);
  assert.equal(await xg.Testings.isGrammarAcceptString(g, callText('qwen25', 'f', '{"a": 3}')), true);
  assert.equal(await xg.Testings.isGrammarAcceptString(g, callText('qwen25', 'f', '{"a": 4}')), false);
  g.dispose();
});

test('integer ranges: exactly the integers within the bounds, written as JSON writes them', async () => {
  const r = rng(5);
  const num = () => {
    const v = Math.floor(r() * 10 ** Math.floor(r() * 5));
    return r() < 0.4 ? -v : v;
  };
  const ranges: [number | null, number | null][] = [[0, 0], [1, 5], [-17, 123], [0, 193], [-157, -5], [96, 151], [10, 10000], [3, null], [null, -3], [null, 0], [-1, null], [null, null], [0, 9], [-9, 9], [100, 999], [99, 1000]];
  for (let i = 0; i < 24; i++) {
    let [a, b] = [num(), num()];
    if (a > b) [a, b] = [b, a];
    ranges.push([r() < 0.2 ? null : a, r() < 0.2 ? null : b]);
  }
  for (const [lo, hi] of ranges) {
    const g = await xg.Grammar.fromEBNF(`root ::= ${integerRangeEBNF(lo === null ? null : BigInt(lo), hi === null ? null : BigInt(hi))}`);
    const candidates = new Set<number>([0, 1, -1, 9, 10, -10, 99, 100, 123456789, -123456789]);
    for (const v of [lo, hi]) if (v !== null) for (let d = -12; d <= 12; d++) candidates.add(v + d);
    for (let k = 0; k < 20; k++) candidates.add(num());
    for (const v of candidates) {
      const inside = (lo === null || v >= lo) && (hi === null || v <= hi);
      assert.equal(await xg.Testings.isGrammarAcceptString(g, String(v)), inside, `${v} in [${lo}, ${hi}]`);
    }
    for (const s of ['-0', '01', '+1', '00', '1.0', '']) assert.equal(await xg.Testings.isGrammarAcceptString(g, s), false, `${s} in [${lo}, ${hi}]`);
    g.dispose();
  }
});

// ---- Random walks: a matcher over a small byte-level vocabulary picks random allowed tokens ----

/** GPT-2's byte-to-unicode table, which byte-level vocabularies are written in. */
function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(bs.includes(b) ? b : 256 + n++);
  return map;
}

const MULTI = ['<tool_call>', '</tool_call>', '<tool_call>\n{"name": "', '}\n</tool_call>', '[TOOL_CALLS] [', '{"name": "', '", "arguments": ', '", "parameters": ', '": ', ', "', '"}', '"]', 'get_weather', 'search', 'get_time', 'true', 'false', 'null', '{}', 'é', '日本', '🌍', ' Paris', '\\n', '\\u00e9'];

let cachedVocab: { encoded: string[]; bytes: Uint8Array[]; stop: number } | null = null;
function vocab() {
  if (cachedVocab) return cachedVocab;
  const b2u = byteToUnicode();
  const enc = new TextEncoder();
  const bytes: Uint8Array[] = [];
  const encoded: string[] = [];
  for (let b = 0; b < 256; b++) {
    bytes.push(Uint8Array.of(b));
    encoded.push(b2u[b]!);
  }
  for (const t of MULTI) {
    const u = enc.encode(t);
    bytes.push(u);
    encoded.push(Array.from(u, (b) => b2u[b]!).join(''));
  }
  encoded.push('</s>');
  bytes.push(new Uint8Array(0));
  cachedVocab = { encoded, bytes, stop: encoded.length - 1 };
  return cachedVocab;
}

/** A function without parameters takes an empty object. */
const NO_PARAMETERS = { type: 'object', properties: {}, additionalProperties: false };

test('the checker used below finds violations', () => {
  const schema = TOOLS[1]!.parameters!;
  assert.equal(schemaViolation({ q: 'abc', opts: { exact: true, limit: 3 }, tags: ['x'] }, schema), null);
  for (const bad of [{ q: 'abcdefg', opts: { exact: true, limit: 3 }, tags: ['x'] }, { q: 'abc', opts: { exact: 1, limit: 3 }, tags: ['x'] }, { q: 'abc', opts: { exact: true, limit: 300 }, tags: ['x'] }, { q: 'abc', opts: { exact: true, limit: 3 }, tags: [] }, { q: 'abc', opts: { exact: true, limit: 3 }, tags: ['x'], zz: 1 }]) {
    assert.notEqual(schemaViolation(bad, schema), null, JSON.stringify(bad));
  }
  assert.notEqual(schemaViolation({ a: 1 }, NO_PARAMETERS), null);
});

/** Where a UTF-8 byte sequence stands: continuation bytes still due and the range of the next one. */
type Utf8State = { due: number; lo: number; hi: number } | null;

function utf8Step(st: Utf8State, b: number): Utf8State {
  if (st === null) return null;
  if (st.due > 0) return b >= st.lo && b <= st.hi ? { due: st.due - 1, lo: 0x80, hi: 0xbf } : null;
  if (b < 0x80) return st;
  if (b >= 0xc2 && b <= 0xdf) return { due: 1, lo: 0x80, hi: 0xbf };
  if (b === 0xe0) return { due: 2, lo: 0xa0, hi: 0xbf };
  if (b === 0xed) return { due: 2, lo: 0x80, hi: 0x9f };
  if (b >= 0xe1 && b <= 0xef) return { due: 2, lo: 0x80, hi: 0xbf };
  if (b === 0xf0) return { due: 3, lo: 0x90, hi: 0xbf };
  if (b >= 0xf1 && b <= 0xf3) return { due: 3, lo: 0x80, hi: 0xbf };
  if (b === 0xf4) return { due: 3, lo: 0x80, hi: 0x8f };
  return null;
}

test('random walks under the constraint always yield calls the parser reads and the schemas accept', async () => {
  const v = vocab();
  const info = await xg.TokenizerInfo.createTokenizerInfo(v.encoded, 'byte_level', false, v.encoded.length, [v.stop]);
  const compiler = await xg.GrammarCompiler.createGrammarCompiler(info);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const closers = new Set([v.stop, 0x22, 0x7d, 0x5d]);
  for (let i = 256; i < v.stop; i++) closers.add(i);
  const schemas = new Map(TOOLS.map((t) => [t.name, t.parameters]));
  let walks = 0;
  let totalCalls = 0;
  const seen = new Set<string>();
  for (const format of FORMATS) {
    const parser = toolCallParser(format);
    const configs: { choice: 'required' | { name: string }; parallel: boolean; seeds: number }[] = [
      { choice: 'required', parallel: false, seeds: 24 },
      { choice: 'required', parallel: true, seeds: 24 },
      { choice: { name: 'search' }, parallel: true, seeds: 10 },
    ];
    for (const { choice, parallel, seeds } of configs) {
      const compiled = await compiler.compileStructuralTag(await toolCallStructuralTag(format, TOOLS, choice, parallel));
      for (let seed = 0; seed < seeds; seed++) {
        const r = rng(1000 * walks + seed + 1);
        const matcher = await xg.GrammarMatcher.createGrammarMatcher(compiled);
        const bytes: number[] = [];
        let utf8: Utf8State = { due: 0, lo: 0, hi: 0 };
        let steps = 0;
        for (; steps < 5000; steps++) {
          const mask = await matcher.getNextTokenBitmask();
          const allowed: number[] = [];
          for (let id = 0; id < v.encoded.length; id++) {
            // xgrammar 0.1.27 checks the lead byte of a non-ASCII character in a string but not
            // its continuation bytes, so it would let a walk write overlong forms or bytes past
            // U+10FFFF; a model writes UTF-8, and so does this walk: it skips such tokens.
            if ((mask[id >>> 5]! >>> (id & 31)) & 1 && (id === v.stop || v.bytes[id]!.reduce<Utf8State>(utf8Step, utf8) !== null)) allowed.push(id);
          }
          assert.ok(allowed.length > 0, 'the grammar never dead-ends');
          const preferred = allowed.filter((id) => closers.has(id));
          const pool = preferred.length && r() < 0.5 ? preferred : allowed;
          const id = pool[Math.floor(r() * pool.length)]!;
          assert.equal(matcher.acceptToken(id), true);
          if (id === v.stop) break;
          bytes.push(...v.bytes[id]!);
          utf8 = v.bytes[id]!.reduce<Utf8State>(utf8Step, utf8);
        }
        assert.ok(matcher.isTerminated(), `walk ended by the stop token after ${steps} steps`);
        matcher.dispose();
        let text: string;
        try {
          text = decoder.decode(Uint8Array.from(bytes));
        } catch {
          assert.fail(`${format}: not UTF-8: ${Buffer.from(bytes).toString("hex")} ${Buffer.from(bytes).toString()}`);
        }
        const parsed = parser.parse(text);
        assert.equal(parsed.content, null, `${format}: no content: ${JSON.stringify(text)}`);
        assert.ok(parsed.calls.length >= 1, `${format}: ${JSON.stringify(text)}`);
        if (!parallel) assert.equal(parsed.calls.length, 1, text);
        for (const call of parsed.calls) {
          if (typeof choice === 'object') assert.equal(call.name, choice.name);
          assert.ok(schemas.has(call.name), call.name);
          const args = JSON.parse(call.arguments) as unknown;
          assert.equal(schemaViolation(args, schemas.get(call.name) ?? NO_PARAMETERS), null, `${format} ${call.name} ${call.arguments}`);
          seen.add(`${format}:${call.name}`);
        }
        totalCalls += parsed.calls.length;
        walks++;
      }
      compiled.dispose();
    }
  }
  compiler.dispose();
  info.dispose();
  assert.equal(walks, 174);
  assert.ok(totalCalls > walks, 'parallel walks made several calls');
  assert.equal(seen.size, 9, [...seen].join(' '));
});
