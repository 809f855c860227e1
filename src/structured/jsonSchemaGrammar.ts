import { InvalidRequestError } from '../errors.js';
import { Bound, integerBounds, integerRangeEBNF, numberRangeEBNF } from './numberRanges.js';
import { JSON_TYPES, SchemaError, checkJsonSchema } from './schemaCheck.js';
import { narrowStringClasses } from './stringClasses.js';
import { XGrammarModule, explained, loadXgrammar } from './xgrammar.js';

/**
 * JSON schemas as EBNF grammars of compact JSON, through xgrammar's converter with its faults
 * (xgrammar 0.1.27) worked around:
 * - its integer ranges admit values outside them (and one-sided ones reject values inside), and
 *   its ranges of other numbers admit text that is not JSON (`0x5`): numeric bounds become range
 *   rules written here (`numberRanges.ts`); bounds of non-integer numbers must be whole numbers;
 * - the characters of strings with a length bound or a pattern may include raw control characters
 *   (and, for patterns, `"` and `\`), which JSON forbids there: those character classes are
 *   narrowed (`stringClasses.ts`).
 * Schema mistakes that would make the converter abort are reported as a 400 instead.
 */

const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const SCHEMA_ONE = ['additionalProperties', 'additionalItems', 'unevaluatedProperties', 'unevaluatedItems', 'contains', 'propertyNames', 'not', 'if', 'then', 'else'];
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Placeholders for numeric ranges: const strings the converter prints as literals, then replaced by rules. */
const NONCE = Math.random().toString(36).slice(2, 10);

/**
 * The schema as handed to xgrammar's converter: checked for mistakes the converter would abort on,
 * with numeric bounds taken out and replaced by placeholders for range rules written here.
 */
class SchemaRewrite {
  readonly ranges: { placeholder: string; rule: string; body: string }[] = [];
  constructor(
    private readonly where: string,
    private readonly param: string,
    private readonly root: Record<string, unknown>,
    private readonly keepBounds: boolean,
  ) {}

  error(path: string, what: string): never {
    throw new InvalidRequestError(`${this.where}${path}: ${what}`, this.param);
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
      if (types.length === 0 || !types.every((t) => typeof t === 'string' && JSON_TYPES.has(t))) this.error(path, `unsupported type ${JSON.stringify(type)}`);
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
    if ((types[0] !== 'integer' && types[0] !== 'number') || !this.keepBounds) return out;
    // An enum or const is already narrower than the range.
    if ('enum' in out || 'const' in out) return out;
    let body: string;
    if (types[0] === 'integer') {
      const [lo, hi] = integerBounds(bounds);
      if (lo !== null && hi !== null && lo > hi) this.error(path, `no integer lies within ${JSON.stringify(bounds)}`);
      body = integerRangeEBNF(lo, hi);
    } else {
      const [lo, hi] = numberBounds(bounds, (what) => this.error(path, what));
      try {
        body = numberRangeEBNF(lo, hi);
      } catch {
        this.error(path, `no number lies within ${JSON.stringify(bounds)}`);
      }
    }
    const placeholder = `__iris_range_${NONCE}_${this.ranges.length}__`;
    const rule = `iris_range_${this.ranges.length}`;
    this.ranges.push({ placeholder, rule, body });
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

/** Bounds of a non-integer number, which must be whole numbers (drafts 4 and 6+). */
function numberBounds(b: Record<string, unknown>, fail: (what: string) => never): [Bound | null, Bound | null] {
  const whole = (v: unknown): bigint => {
    if (typeof v !== 'number' || !Number.isInteger(v)) fail(`bounds of a "number" must be whole numbers here, got ${JSON.stringify(v)} (use "integer", or scale the value)`);
    return BigInt(v);
  };
  let lo: Bound | null = null;
  let hi: Bound | null = null;
  const raise = (x: Bound) => (lo = lo === null || x.v > lo.v || (x.v === lo.v && x.excl) ? x : lo);
  const lower = (x: Bound) => (hi = hi === null || x.v < hi.v || (x.v === hi.v && x.excl) ? x : hi);
  if (b.minimum !== undefined) raise({ v: whole(b.minimum), excl: b.exclusiveMinimum === true });
  if (b.maximum !== undefined) lower({ v: whole(b.maximum), excl: b.exclusiveMaximum === true });
  if (typeof b.exclusiveMinimum === 'number') raise({ v: whole(b.exclusiveMinimum), excl: true });
  if (typeof b.exclusiveMaximum === 'number') lower({ v: whole(b.exclusiveMaximum), excl: true });
  return [lo, hi];
}

/**
 * This thread's instance for converting schemas (no vocabulary needed), replaced after a call that
 * aborted: an xgrammar instance is not to be trusted after an abort.
 */
let converter: XGrammarModule | null = null;

export interface SchemaGrammarOptions {
  /** JSON's separators between items and after keys: [",", ":"] (compact) or [", ", ": "]. */
  separators: [string, string];
  /** true: objects hold only the listed properties unless additionalProperties says otherwise. */
  strict: boolean;
  /** What the schema is, for messages ("response_format.json_schema.schema"). */
  where: string;
  /** The request field an error names. */
  param: string;
}

/** The EBNF (root rule `root`) of the compact JSON texts that conform to the schema. */
export async function jsonSchemaEBNF(schema: unknown, opts: SchemaGrammarOptions): Promise<string> {
  if (typeof schema === 'boolean' || (isObject(schema) && Object.keys(schema).length === 0)) schema = {};
  if (!isObject(schema)) throw new InvalidRequestError(`${opts.where}: a schema must be an object`, opts.param);
  return (await convert(schema, opts, true)) ?? (await convert(schema, opts, false))!;
}

/** null if a range placeholder did not come out as the expected literal (then without ranges). */
async function convert(schema: Record<string, unknown>, opts: SchemaGrammarOptions, keepBounds: boolean): Promise<string | null> {
  const rewrite = new SchemaRewrite(opts.where, opts.param, schema, keepBounds);
  const rewritten = rewrite.schema(schema, '');
  // Then keywords the converter would ignore (after the rewrite's checks of well-formedness).
  try {
    checkJsonSchema(schema);
  } catch (e) {
    if (e instanceof SchemaError) throw new InvalidRequestError(`${opts.where}: ${e.message}`, opts.param);
    throw e;
  }
  let text = '';
  try {
    converter ??= loadXgrammar();
    const x = converter;
    text = await explained(async () => {
      const grammar = await x.Grammar.fromJSONSchema(JSON.stringify(rewritten), false, -1, opts.separators, opts.strict);
      const t = grammar.toString();
      grammar.dispose();
      return t;
    });
  } catch (e) {
    converter = null;
    rewrite.error('', `cannot be turned into a grammar (${(e as Error).message.split('\n')[0]})`);
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
