import { xgrammar } from '../structured/xgrammar.js';
import { parametersSchema } from './prompt.js';
import type { ToolCallFormat, ToolFunction } from './types.js';
import { ToolRequestError } from './validate.js';

/**
 * Grammar constraints for `tool_choice` 'required' or a named function: an xgrammar structural
 * tag under which the output is exactly one call (or, with parallel calls, one or more) in the
 * parser's format, each call's arguments conforming to its function's parameters schema, and
 * nothing after the last call.
 *
 * The calls are written the way the parsers and the fallback prompt expect, on one line:
 * - qwen25: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`, several separated by "\n";
 * - llama3: `{"name": "f", "parameters": {...}}`, several separated by "; ";
 * - mistral: `[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]`.
 *
 * The arguments JSON is compact, with Python json.dumps' separators (", " and ": ") and no other
 * whitespace, so a model cannot spend tokens on whitespace. The structural tag's own `json_schema`
 * format allows unbounded whitespace in xgrammar 0.1.27 (it takes no whitespace options), so each
 * function's schema is converted here with xgrammar's JSON-schema converter set to compact output,
 * and embedded as a `grammar` format. That converter needs xgrammar's WebAssembly module, hence
 * the function is async.
 *
 * Faults of xgrammar 0.1.27's converter are worked around:
 * - its integer ranges (minimum/maximum/exclusive*) admit values outside the range (and one-sided
 *   ones reject values inside), so integer bounds are turned into a grammar written here;
 * - its ranges for non-integer numbers admit text that is not JSON at all (`0x5`), so bounds on
 *   `number` are dropped: such numbers are constrained to be JSON numbers, not to be in range;
 * - the characters of strings with a length bound or a pattern may include raw control
 *   characters (and, for patterns, `"` and `\`), which JSON forbids there, so those character
 *   classes are narrowed to characters a JSON string may hold as they are (see
 *   `narrowStringClasses`; pattern classes of non-ASCII ranges become "any non-ASCII character",
 *   the closest xgrammar 0.1.27 matches correctly).
 * Schema mistakes that would make the converter abort are reported as a ToolRequestError on
 * `tools` instead.
 */
export async function toolCallStructuralTag(
  parser: ToolCallFormat,
  tools: ToolFunction[],
  choice: 'required' | { name: string },
  parallel: boolean,
): Promise<Record<string, unknown>> {
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : tools;
  if (chosen.length === 0) {
    throw new ToolRequestError(typeof choice === 'object' ? `tool_choice names function "${choice.name}", which is not in tools` : 'tool_choice "required" needs at least one tool', 'tool_choice');
  }
  const argsKey = parser === 'llama3' ? 'parameters' : 'arguments';
  const tags: Record<string, unknown>[] = [];
  for (const fn of chosen) {
    const grammar = await argumentsGrammar(fn);
    const head = `{"name": ${JSON.stringify(fn.name)}, "${argsKey}": `;
    tags.push({
      type: 'tag',
      begin: parser === 'qwen25' ? `<tool_call>\n${head}` : head,
      content: { type: 'grammar', grammar },
      end: parser === 'qwen25' ? '}\n</tool_call>' : '}',
    });
  }
  const separator = parser === 'qwen25' ? '\n' : parser === 'llama3' ? '; ' : ', ';
  const calls: Record<string, unknown> = parallel
    ? { type: 'tags_with_separator', tags, separator, at_least_one: true }
    : tags.length === 1
      ? tags[0]!
      : { type: 'or', elements: tags };
  const format = parser === 'mistral' ? { type: 'tag', begin: '[TOOL_CALLS] [', content: calls, end: ']' } : calls;
  return { type: 'structural_tag', format };
}

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null', 'object', 'array']);
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const SCHEMA_ONE = ['additionalProperties', 'additionalItems', 'unevaluatedProperties', 'unevaluatedItems', 'contains', 'propertyNames', 'not', 'if', 'then', 'else'];
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Placeholders for integer ranges: const strings the converter prints as literals, then replaced by rules. */
const NONCE = Math.random().toString(36).slice(2, 10);

class SchemaRewrite {
  readonly ranges: { placeholder: string; rule: string; body: string }[] = [];
  constructor(
    private readonly fn: string,
    private readonly root: Record<string, unknown>,
    private readonly keepIntegerBounds: boolean,
  ) {}

  private error(path: string, what: string): never {
    throw new ToolRequestError(`tools: function "${this.fn}" parameters${path}: ${what}`, 'tools');
  }

  /** Mistakes that would make xgrammar's converter abort (it prints to stderr) get a clear message here instead. */
  private check(s: Record<string, unknown>, path: string): void {
    for (const k of ['minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties']) {
      if (k in s && !(Number.isInteger(s[k]) && (s[k] as number) >= 0)) this.error(path, `${k} must be a non-negative integer`);
    }
    for (const [lo, hi] of [['minLength', 'maxLength'], ['minItems', 'maxItems'], ['minProperties', 'maxProperties']] as const) {
      if (typeof s[lo] === 'number' && typeof s[hi] === 'number' && s[lo] > s[hi]) this.error(path, `${lo} is greater than ${hi}`);
    }
    if ('required' in s && !(Array.isArray(s.required) && s.required.every((r) => typeof r === 'string'))) this.error(path, 'required must be an array of strings');
    for (const k of SCHEMA_MAPS) if (k in s && !isObject(s[k])) this.error(path, `${k} must be an object`);
    if ('enum' in s && !(Array.isArray(s.enum) && s.enum.length > 0)) this.error(path, 'enum must be a non-empty array');
    for (const k of SCHEMA_LISTS) if (k in s && !(Array.isArray(s[k]) && (k === 'prefixItems' || (s[k] as unknown[]).length > 0))) this.error(path, `${k} must be a non-empty array of schemas`);
    if ('pattern' in s) {
      try {
        if (typeof s.pattern !== 'string') throw new Error();
        new RegExp(s.pattern);
      } catch {
        this.error(path, `pattern ${JSON.stringify(s.pattern)} is not a valid regular expression`);
      }
    }
  }

  schema(s: unknown, path: string): unknown {
    if (typeof s === 'boolean') return s;
    if (!isObject(s)) this.error(path, 'a schema must be an object or a boolean');
    this.check(s, path);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      if (SCHEMA_MAPS.includes(k) && isObject(v)) {
        out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, this.schema(sub, `${path}.${k}.${name}`)]));
      } else if (SCHEMA_LISTS.includes(k) && Array.isArray(v)) {
        out[k] = v.map((sub, i) => this.schema(sub, `${path}.${k}[${i}]`));
      } else if (k === 'items') {
        out[k] = Array.isArray(v) ? v.map((sub, i) => this.schema(sub, `${path}.items[${i}]`)) : this.schema(v, `${path}.items`);
      } else if (SCHEMA_ONE.includes(k)) {
        out[k] = this.schema(v, `${path}.${k}`);
      } else {
        out[k] = v;
      }
    }
    if ('$ref' in out) this.checkRef(out.$ref, path);
    const type = out.type;
    if (type !== undefined) {
      const types = Array.isArray(type) ? type : [type];
      if (types.length === 0 || !types.every((t) => typeof t === 'string' && TYPES.has(t))) this.error(path, `unsupported type ${JSON.stringify(type)}`);
    }
    if (!BOUNDS.some((b) => b in out)) return out;
    const types = (Array.isArray(type) ? type : type === undefined ? [] : [type]) as string[];
    if (types.length > 1 && (types.includes('integer') || types.includes('number'))) {
      // Bounds apply to the numeric types only: one case per type.
      const { type: _, ...rest } = out;
      return this.schema({ anyOf: types.map((t) => ({ ...rest, type: t })) }, path);
    }
    const bounds = Object.fromEntries(BOUNDS.filter((b) => b in out).map((b) => [b, out[b]]));
    for (const b of BOUNDS) delete out[b];
    if (types[0] !== 'integer' || !this.keepIntegerBounds) return out;
    const [lo, hi] = integerBounds(bounds);
    if (lo !== null && hi !== null && lo > hi) this.error(path, `no integer lies within ${JSON.stringify(bounds)}`);
    // An enum or const is already narrower than the range.
    if ('enum' in out || 'const' in out) return out;
    const placeholder = `__iris_int_${NONCE}_${this.ranges.length}__`;
    const rule = `iris_int_range_${this.ranges.length}`;
    this.ranges.push({ placeholder, rule, body: integerRangeEBNF(lo, hi) });
    return { const: placeholder };
  }

  private checkRef(ref: unknown, path: string): void {
    if (typeof ref !== 'string' || !ref.startsWith('#')) this.error(path, `only local $ref ("#/...") are supported, got ${JSON.stringify(ref)}`);
    let at: unknown = this.root;
    for (const part of ref.slice(1).split('/').filter((p) => p !== '')) {
      const key = decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObject(at) || !(key in at)) this.error(path, `$ref ${JSON.stringify(ref)} points nowhere`);
      at = at[key];
    }
  }
}

/** Integer bounds (inclusive, null for none) from JSON-schema keywords, drafts 4 and 6+. */
function integerBounds(b: Record<string, unknown>): [bigint | null, bigint | null] {
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  let lo: bigint | null = null;
  let hi: bigint | null = null;
  const raise = (v: bigint) => (lo = lo === null || v > lo ? v : lo);
  const lower = (v: bigint) => (hi = hi === null || v < hi ? v : hi);
  if (finite(b.minimum)) {
    const excl = b.exclusiveMinimum === true;
    const m = Math.ceil(b.minimum);
    raise(BigInt(excl && m === b.minimum ? m + 1 : m));
  }
  if (finite(b.maximum)) {
    const excl = b.exclusiveMaximum === true;
    const m = Math.floor(b.maximum);
    lower(BigInt(excl && m === b.maximum ? m - 1 : m));
  }
  if (finite(b.exclusiveMinimum)) raise(BigInt(Math.floor(b.exclusiveMinimum) + 1));
  if (finite(b.exclusiveMaximum)) lower(BigInt(Math.ceil(b.exclusiveMaximum) - 1));
  return [lo, hi];
}

type Piece = string; // an EBNF element: "7", [3-5], [0-9] or [0-9]*

const digitClass = (a: number, b: number): Piece => (a === b ? `"${a}"` : `[${a}-${b}]`);

/** Digit strings of one length from x to y (x <= y, same length; no leading-zero rule here). */
function sameLength(x: string, y: string): Piece[][] {
  if (x.length === 0) return [[]];
  if (x[0] === y[0]) return sameLength(x.slice(1), y.slice(1)).map((seq) => [`"${x[0]}"`, ...seq]);
  const rest = x.length - 1;
  const lo = Number(x[0]);
  const hi = Number(y[0]);
  const lowFull = /^0*$/.test(x.slice(1));
  const highFull = /^9*$/.test(y.slice(1));
  const out: Piece[][] = [];
  let from = lo;
  let to = hi;
  if (!lowFull) {
    out.push(...sameLength(x.slice(1), '9'.repeat(rest)).map((seq) => [`"${x[0]}"`, ...seq]));
    from = lo + 1;
  }
  if (!highFull) {
    out.push(...sameLength('0'.repeat(rest), y.slice(1)).map((seq) => [`"${y[0]}"`, ...seq]));
    to = hi - 1;
  }
  if (from <= to) out.push([digitClass(from, to), ...Array<Piece>(rest).fill('[0-9]')]);
  return out;
}

/** Non-negative integers from a to b (b null: no upper bound), as JSON writes them. */
function naturals(a: bigint, b: bigint | null): Piece[][] {
  const out: Piece[][] = [];
  const la = a.toString().length;
  const lb = b === null ? la : b.toString().length;
  for (let len = la; len <= lb; len++) {
    const x = len === la ? a.toString() : '1' + '0'.repeat(len - 1);
    const y = b !== null && len === lb ? b.toString() : '9'.repeat(len);
    out.push(...sameLength(x, y));
  }
  if (b === null) out.push(['[1-9]', ...Array<Piece>(la).fill('[0-9]'), '[0-9]*']);
  return out;
}

/** EBNF for the integers in [lo, hi] (null: unbounded on that side), without "-0". */
export function integerRangeEBNF(lo: bigint | null, hi: bigint | null): string {
  const alts: Piece[][] = [];
  if (hi === null || hi >= 0n) alts.push(...naturals(lo !== null && lo > 0n ? lo : 0n, hi));
  if (lo === null || lo < 0n) {
    const from = hi !== null && hi < 0n ? -hi : 1n;
    alts.push(...naturals(from, lo === null ? null : -lo).map((seq) => ['"-"', ...seq]));
  }
  return alts.map((seq) => `(${seq.join(' ')})`).join(' | ');
}

/** Converted schemas by their JSON text (the conversion costs a pass through xgrammar's converter). */
const grammarCache = new Map<string, string>();
const CACHE_SIZE = 256;

/** The compact-JSON EBNF grammar of a function's arguments. */
async function argumentsGrammar(fn: ToolFunction): Promise<string> {
  let schema = parametersSchema(fn);
  if (!('type' in schema)) schema = { type: 'object', ...schema };
  const key = JSON.stringify([fn.name, schema]);
  const cached = grammarCache.get(key);
  if (cached !== undefined) return cached;
  let ebnf = await convert(fn.name, schema, true);
  if (ebnf === null) ebnf = (await convert(fn.name, schema, false))!;
  if (grammarCache.size >= CACHE_SIZE) grammarCache.delete(grammarCache.keys().next().value!);
  grammarCache.set(key, ebnf);
  return ebnf;
}

/** null if an integer-range placeholder did not come out as the expected literal (then try without). */
async function convert(name: string, schema: Record<string, unknown>, keepIntegerBounds: boolean): Promise<string | null> {
  const rewrite = new SchemaRewrite(name, schema, keepIntegerBounds);
  const rewritten = rewrite.schema(schema, '');
  let text: string;
  try {
    const grammar = await xgrammar().Grammar.fromJSONSchema(JSON.stringify(rewritten), false, -1, [', ', ': '], true);
    text = grammar.toString();
    grammar.dispose();
  } catch (e) {
    throw new ToolRequestError(`tools: function "${name}" parameters: xgrammar cannot turn this JSON schema into a grammar (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, 'tools');
  }
  text = narrowStringClasses(text);
  for (const r of rewrite.ranges) {
    const literal = JSON.stringify(JSON.stringify(r.placeholder));
    if (!text.includes(literal)) return null;
    text = text.split(literal).join(r.rule);
    text += `\n${r.rule} ::= ${r.body}`;
  }
  return text;
}

/** ASCII characters a JSON string cannot hold unescaped. */
const UNSAFE: [number, number][] = [
  [0x00, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
];
const ASCII: [number, number][] = [[0, 0x7f]];

const ESCAPES: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, f: 0x0c, v: 0x0b, b: 0x08, a: 0x07, e: 0x1b, '0': 0 };

/** Reads one (possibly escaped) character of a character class at i: [code point, next index]. */
function classChar(text: string, i: number): [number, number] {
  if (text[i] !== '\\') {
    const cp = text.codePointAt(i)!;
    return [cp, i + String.fromCodePoint(cp).length];
  }
  const e = text[i + 1]!;
  const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
  if (hexLen) return [parseInt(text.slice(i + 2, i + 2 + hexLen), 16), i + 2 + hexLen];
  if (e in ESCAPES) return [ESCAPES[e]!, i + 2];
  const cp = text.codePointAt(i + 1)!;
  return [cp, i + 1 + String.fromCodePoint(cp).length];
}

function classText(ranges: [number, number][]): string {
  const ch = (c: number) => (c >= 0x20 && c < 0x7f && !'\\]-^["'.includes(String.fromCharCode(c)) ? String.fromCharCode(c) : c > 0xffff ? `\\U${c.toString(16).padStart(8, '0')}` : c > 0xff ? `\\u${c.toString(16).padStart(4, '0')}` : `\\x${c.toString(16).padStart(2, '0')}`);
  return ranges.map(([a, b]) => (a === b ? ch(a) : `${ch(a)}-${ch(b)}`)).join('');
}

/** The parts of `ranges` inside `keep` (both lists of inclusive ranges). */
function intersect(ranges: [number, number][], keep: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) for (const [c, d] of keep) if (Math.max(a, c) <= Math.min(b, d)) out.push([Math.max(a, c), Math.min(b, d)]);
  return out;
}

/** The parts of `ranges` outside `cut`. */
function subtract(ranges: [number, number][], cut: [number, number][]): [number, number][] {
  let out = ranges;
  for (const [ca, cb] of cut) {
    const next: [number, number][] = [];
    for (const [a, b] of out) {
      if (cb < a || ca > b) next.push([a, b]);
      else {
        if (a < ca) next.push([a, ca - 1]);
        if (b > cb) next.push([cb + 1, b]);
      }
    }
    out = next;
  }
  return out;
}

/**
 * Narrows the character classes that stand for free string content to characters JSON allows
 * unescaped in a string. xgrammar 0.1.27 matches character classes precisely on ASCII only: a
 * negated class cannot exclude non-ASCII characters (it warns and ignores them) and a positive
 * class with non-ASCII ranges admits the wrong characters (`[\u4e00-\u9fff]` takes `"`). So:
 * - a negated class also excludes control characters, `"` and `\`;
 * - a positive class holding control or non-ASCII characters keeps its ASCII part minus those,
 *   and takes any non-ASCII character if it had some (`[^\x00-\x7f]`, which xgrammar matches).
 * Classes of ASCII characters only, such as those after a backslash, are left alone.
 */
export function narrowStringClasses(ebnf: string): string {
  let out = '';
  let i = 0;
  while (i < ebnf.length) {
    const c = ebnf[i]!;
    if (c === '"') {
      // A string literal: copied through, escapes included.
      let j = i + 1;
      while (j < ebnf.length && ebnf[j] !== '"') j += ebnf[j] === '\\' ? 2 : 1;
      out += ebnf.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c !== '[') {
      out += c;
      i++;
      continue;
    }
    let j = i + 1;
    const negated = ebnf[j] === '^';
    if (negated) j++;
    const items: [number, number][] = [];
    while (j < ebnf.length && ebnf[j] !== ']') {
      const [a, k] = classChar(ebnf, j);
      j = k;
      if (ebnf[j] === '-' && ebnf[j + 1] !== ']') {
        const [b, k2] = classChar(ebnf, j + 1);
        items.push([a, b]);
        j = k2;
      } else {
        items.push([a, a]);
      }
    }
    const original = ebnf.slice(i, j + 1);
    i = j + 1;
    if (negated) {
      out += `[^${classText([...items, ...UNSAFE])}]`;
      continue;
    }
    const nonAscii = items.some(([, b]) => b > 0x7f);
    if (!nonAscii && !items.some(([a]) => a <= 0x1f)) {
      out += original;
      continue;
    }
    const ascii = subtract(intersect(items, ASCII), UNSAFE);
    const asciiClass = ascii.length ? `[${classText(ascii)}]` : null;
    if (!nonAscii) out += asciiClass ?? original;
    else out += asciiClass ? `(${asciiClass} | [^\\x00-\\x7f])` : '[^\\x00-\\x7f]';
  }
  return out;
}
