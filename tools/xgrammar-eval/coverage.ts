/**
 * What xgrammar (web-xgrammar 0.1.27) does with each JSON Schema keyword, regex construct and
 * EBNF feature: for every case a schema (or pattern, or grammar) is compiled and strings that a
 * validator would accept ("valid") and reject ("invalid") are checked two ways:
 *   1. Testings.isGrammarAcceptString on the grammar (no tokenizer), and
 *   2. a GrammarMatcher of the grammar compiled for a 256-token byte vocabulary (+ a stop token),
 *      fed with _acceptString and then the stop token (accepted only if the output is complete).
 * The verdict per case: "enforced" (all as a validator), "ignored" (every invalid string
 * accepted), "partial" (some invalid strings accepted), "rejects valid" (a valid string refused:
 * over-restrictive), or "error" (compile fails; xgrammar's message, printed to stderr, is quoted).
 *
 * JSON keyword cases are compiled with anyWhitespace=true, indent=-1 (no layout constraint, so
 * only the keyword decides) and strictMode=true unless the case says otherwise; the "layout" group
 * compares the layout options. A numeric fuzz (random minimum/maximum/exclusive bounds, integers
 * and numbers, probed around the bounds) measures how often range constraints give wrong
 * verdicts.
 *
 * Cases run in a worker thread that is replaced after every case whose compile failed (a failed
 * compile damages the module: see aborts.ts).
 *
 * Run: npm run build && node dist/tools/xgrammar-eval/coverage.js [--json OUT.json] [--md OUT.md]
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { captureOutput, fatalMessage, warnings, xg, type CompiledGrammar, type GrammarCompiler, type XG } from './common.js';
import { byteToUnicode } from './vocab.js';

type Kind = 'json' | 'regex' | 'ebnf' | 'builtin';

export interface Case {
  group: string;
  keyword: string;
  kind?: Kind;
  /** JSON Schema (serialized with JSON.stringify unless raw), regex pattern or EBNF text. */
  source: unknown;
  raw?: boolean;
  valid: string[];
  invalid: string[];
  rootRule?: string;
  strict?: boolean;
  anyWhitespace?: boolean;
  maxWhitespaceCnt?: number;
  indent?: number;
  separators?: [string, string] | null;
  note?: string;
}

export interface Outcome {
  group: string;
  keyword: string;
  verdict: 'enforced' | 'ignored' | 'partial' | 'rejects valid' | 'error' | 'compiles';
  error?: string;
  acceptedInvalid: string[];
  rejectedValid: string[];
  matcherDisagrees: string[];
  warnings: string[];
  note?: string;
  source: string;
}

const s = JSON.stringify;
const J = (schema: unknown, valid: string[], invalid: string[], extra: Partial<Case> = {}) => ({ source: schema, valid, invalid, ...extra });

export function jsonCases(): Case[] {
  const c: Case[] = [];
  const add = (group: string, keyword: string, x: Omit<Case, 'group' | 'keyword'>) => c.push({ group, keyword, kind: 'json', ...x });
  const T = 'type';
  add(T, 'type: string', J({ type: 'string' }, ['"a"', '""'], ['1', 'null']));
  add(T, 'type: integer', J({ type: 'integer' }, ['1', '-7', '0'], ['1.5', '"1"', '1e3', '01']));
  add(T, 'type: number', J({ type: 'number' }, ['1.5', '-2', '1e3', '0.25'], ['"1"', '.5', 'NaN']));
  add(T, 'type: boolean', J({ type: 'boolean' }, ['true', 'false'], ['1', '"true"']));
  add(T, 'type: null', J({ type: 'null' }, ['null'], ['0', '""']));
  add(T, 'type: object', J({ type: 'object' }, ['{}', '{"x":1}', '{"x":{"y":[1]}}'], ['[]', '1']));
  add(T, 'type: array', J({ type: 'array' }, ['[]', '[1,"a",null]'], ['{}', '1']));
  add(T, 'type: ["string","null"]', J({ type: ['string', 'null'] }, ['"a"', 'null'], ['1', 'true']));
  add(T, 'type: ["integer","string"] + minimum/maxLength', J({ type: ['integer', 'string'], minimum: 10, maxLength: 2 }, ['17', '"ab"'], ['3', '"abc"']));
  add(T, 'type: [] of one', J({ type: ['integer'] }, ['1'], ['"a"']));

  const O = 'object';
  const ab = { a: { type: 'integer' }, b: { type: 'string' } };
  add(O, 'properties', J({ type: 'object', properties: ab }, ['{"a":1,"b":"x"}', '{"a":1}', '{}'], ['{"a":"x"}', '{"b":2}']));
  add(O, 'properties (order)', J({ type: 'object', properties: ab, required: ['a', 'b'] }, ['{"a":1,"b":"x"}', '{"b":"x","a":1}'], [], { note: 'JSON objects are unordered; a validator accepts both orders' }));
  add(O, 'required', J({ type: 'object', properties: ab, required: ['a'] }, ['{"a":1}', '{"a":1,"b":"x"}'], ['{}', '{"b":"x"}']));
  add(O, 'required (name not in properties)', J({ type: 'object', properties: ab, required: ['z'] }, ['{"z":1}', '{"z":"q","a":1}'], ['{}', '{"a":1}']));
  add(O, 'additionalProperties: false', J({ type: 'object', properties: ab, additionalProperties: false }, ['{"a":1}'], ['{"a":1,"c":2}', '{"c":2}']));
  add(O, 'additionalProperties: true', J({ type: 'object', properties: ab, additionalProperties: true }, ['{"a":1,"c":2}', '{"c":[true]}'], ['{"a":"x"}', '{"a":1,"a":2}'], { note: 'invalid ones: a declared name reused as an extra key with the wrong type; a duplicate key' }));
  add(O, 'additionalProperties: {schema}', J({ type: 'object', properties: ab, additionalProperties: { type: 'integer' } }, ['{"a":1,"c":2}'], ['{"a":1,"c":"x"}', '{"b":1}'], { note: '{"b":1}: declared string property b written as an extra integer key' }));
  add(O, 'additionalProperties absent, strictMode=true', J({ type: 'object', properties: ab }, ['{"a":1}', '{"a":1,"c":2}'], [], { strict: true, note: 'JSON Schema allows extra properties when additionalProperties is absent' }));
  add(O, 'additionalProperties absent, strictMode=false', J({ type: 'object', properties: ab }, ['{"a":1}', '{"a":1,"c":2}', '{"c":"x"}'], ['{"a":"x"}'], { strict: false }));
  add(O, 'minProperties', J({ type: 'object', additionalProperties: { type: 'integer' }, minProperties: 2 }, ['{"a":1,"b":2}'], ['{}', '{"a":1}']));
  add(O, 'maxProperties', J({ type: 'object', additionalProperties: { type: 'integer' }, maxProperties: 1 }, ['{}', '{"a":1}'], ['{"a":1,"b":2}']));
  add(O, 'patternProperties', J({ type: 'object', patternProperties: { '^x_': { type: 'integer' } }, additionalProperties: false }, ['{"x_":1}', '{"x_a":1}', '{}'], ['{"x_a":"s"}', '{"y":1}'], { note: 'JSON Schema patterns are unanchored: "^x_" matches "x_a"' }));
  add(O, 'patternProperties (full-match pattern)', J({ type: 'object', patternProperties: { '^x_.*$': { type: 'integer' } }, additionalProperties: false }, ['{"x_":1}', '{"x_a":1}'], ['{"x_a":"s"}', '{"y":1}']));
  add(O, 'patternProperties + properties', J({ type: 'object', properties: { a: { type: 'string' } }, patternProperties: { '^x_.*$': { type: 'integer' } }, additionalProperties: false }, ['{"a":"s","x_1":1}', '{"x_1":1}'], ['{"a":"s","x_1":"s"}', '{"a":"s","y":1}']));
  add(O, 'propertyNames', J({ type: 'object', propertyNames: { pattern: '^[a-z]+$' }, additionalProperties: { type: 'integer' } }, ['{"ab":1}'], ['{"A1":1}']));
  add(O, 'dependentRequired', J({ type: 'object', properties: ab, dependentRequired: { a: ['b'] } }, ['{"a":1,"b":"x"}', '{"b":"x"}', '{}'], ['{"a":1}']));
  add(O, 'dependentSchemas', J({ type: 'object', properties: ab, dependentSchemas: { a: { required: ['b'] } } }, ['{"a":1,"b":"x"}', '{}'], ['{"a":1}']));
  add(O, 'unevaluatedProperties: false', J({ type: 'object', properties: ab, unevaluatedProperties: false }, ['{"a":1}'], ['{"a":1,"c":2}'], { strict: false }));

  const A = 'array';
  add(A, 'items', J({ type: 'array', items: { type: 'integer' } }, ['[]', '[1,2]'], ['[1,"a"]', '["a"]']));
  add(A, 'prefixItems', J({ type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }] }, ['["a",1]'], ['[1,"a"]', '[1]']));
  add(A, 'prefixItems + extra item (strict)', J({ type: 'array', prefixItems: [{ type: 'string' }] }, ['["a"]', '["a",1]'], [], { note: 'JSON Schema allows items after prefixItems unless items:false' }));
  add(A, 'prefixItems + items:false', J({ type: 'array', prefixItems: [{ type: 'string' }], items: false }, ['["a"]'], ['["a",1]']));
  add(A, 'minItems', J({ type: 'array', items: { type: 'integer' }, minItems: 2 }, ['[1,2]', '[1,2,3]'], ['[]', '[1]']));
  add(A, 'maxItems', J({ type: 'array', items: { type: 'integer' }, maxItems: 2 }, ['[]', '[1,2]'], ['[1,2,3]']));
  add(A, 'minItems+maxItems (0..0)', J({ type: 'array', maxItems: 0 }, ['[]'], ['[1]']));
  add(A, 'uniqueItems', J({ type: 'array', items: { type: 'integer' }, uniqueItems: true }, ['[1,2]'], ['[1,1]']));
  add(A, 'contains', J({ type: 'array', contains: { type: 'integer' } }, ['["a",1]', '[1]'], ['["a"]', '[]']));
  add(A, 'contains + items', J({ type: 'array', items: {}, contains: { type: 'integer' } }, ['["a",1]', '[1]'], ['["a"]', '[]']));
  add(A, 'minContains/maxContains', J({ type: 'array', contains: { type: 'integer' }, minContains: 2, maxContains: 2 }, ['[1,2]'], ['[1]', '[1,2,3]']));
  add(A, 'minContains/maxContains + items', J({ type: 'array', items: {}, contains: { type: 'integer' }, minContains: 2, maxContains: 2 }, ['[1,2]', '["a",1,2]'], ['[1]', '["a","b"]', '[1,2,3]']));

  const V = 'value';
  add(V, 'enum', J({ enum: ['a', 1, null, { k: [true] }] }, ['"a"', '1', 'null', '{"k":[true]}'], ['"b"', '2', '{"k":[false]}']));
  add(V, 'enum + type', J({ type: 'string', enum: ['a', 'b'] }, ['"a"', '"b"'], ['"c"']));
  add(V, 'const', J({ const: 'x' }, ['"x"'], ['"y"', 'null']));
  add(V, 'const (object)', J({ const: { a: 1 } }, ['{"a":1}'], ['{"a":2}', '{}']));

  const C = 'composition';
  add(C, 'anyOf', J({ anyOf: [{ type: 'string' }, { type: 'integer' }] }, ['"a"', '1'], ['true', 'null']));
  add(C, 'oneOf', J({ oneOf: [{ type: 'integer' }, { type: 'number', minimum: 0 }] }, ['-1', '1.5'], ['2', '-1.5'], { note: '2 matches both branches (invalid for oneOf); -1.5 matches none' }));
  add(C, 'allOf', J({ allOf: [{ type: 'object', properties: { a: { type: 'integer' } }, required: ['a'] }, { properties: { b: { type: 'string' } }, required: ['b'] }] }, ['{"a":1,"b":"x"}'], ['{"a":1}', '{"b":"x"}']));
  add(C, 'allOf (single)', J({ allOf: [{ type: 'integer', minimum: 30 }] }, ['30'], ['29', '"a"']));
  add(C, 'allOf (two integer ranges)', J({ allOf: [{ type: 'integer', minimum: 30 }, { type: 'integer', maximum: 50 }] }, ['40'], ['29', '51', '"a"', '{}']));
  add(C, 'not', J({ not: { type: 'string' } }, ['1', 'null'], ['"a"']));
  add(C, 'not (inside type)', J({ type: 'integer', not: { const: 3 } }, ['1'], ['3']));
  add(C, 'if/then/else', J({ type: 'object', properties: { k: { type: 'string' }, v: { type: 'integer' } }, if: { properties: { k: { const: 'x' } } }, then: { required: ['v'] }, else: { properties: { v: { maximum: 0 } } } }, ['{"k":"x","v":1}', '{"k":"y"}'], ['{"k":"x"}', '{"k":"y","v":5}']));

  const R = '$ref';
  add(R, '$ref #/$defs', J({ $defs: { p: { type: 'integer' } }, type: 'object', properties: { a: { $ref: '#/$defs/p' } }, required: ['a'] }, ['{"a":1}'], ['{"a":"x"}']));
  add(R, '$ref #/definitions', J({ definitions: { p: { type: 'integer' } }, type: 'object', properties: { a: { $ref: '#/definitions/p' } }, required: ['a'] }, ['{"a":1}'], ['{"a":"x"}']));
  add(R, '$ref recursive (#/$defs/node)', J({ $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v'] } }, $ref: '#/$defs/node' }, ['{"v":1}', '{"v":1,"kids":[{"v":2,"kids":[{"v":3}]}]}'], ['{"v":1,"kids":[{"v":"x"}]}', '{"v":1,"kids":[{}]}']));
  add(R, '$ref recursive (#)', J({ type: 'object', properties: { v: { type: 'integer' }, next: { anyOf: [{ $ref: '#' }, { type: 'null' }] } }, required: ['v', 'next'] }, ['{"v":1,"next":null}', '{"v":1,"next":{"v":2,"next":null}}'], ['{"v":1,"next":{"v":2}}']));
  add(R, '$ref to a missing definition', J({ type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, [], []));
  add(R, '$ref to a remote URI', J({ type: 'object', properties: { a: { $ref: 'https://example.com/s.json' } } }, ['{"a":1}'], []));

  const N = 'numeric';
  add(N, 'integer minimum/maximum', J({ type: 'integer', minimum: -5, maximum: 120 }, ['-5', '0', '120', '99'], ['-6', '121', '1000']));
  add(N, 'integer minimum only (3)', J({ type: 'integer', minimum: 3 }, ['3', '10', '12345'], ['2', '1', '0', '-1']));
  add(N, 'integer minimum only (-5)', J({ type: 'integer', minimum: -5 }, ['-5', '-1', '0', '7'], ['-6', '-10']));
  add(N, 'integer maximum only (-5)', J({ type: 'integer', maximum: -5 }, ['-5', '-100'], ['-4', '-1', '0', '3']));
  add(N, 'integer minimum only (42)', J({ type: 'integer', minimum: 42 }, ['42', '43', '100', '9999'], ['41', '0', '-42']));
  add(N, 'integer exclusiveMinimum/exclusiveMaximum', J({ type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 }, ['1', '9'], ['0', '10']));
  add(N, 'integer large range', J({ type: 'integer', minimum: 1000, maximum: 999999 }, ['1000', '999999', '54321'], ['999', '1000000']));
  add(N, 'number minimum/maximum', J({ type: 'number', minimum: 1.5, maximum: 2.5 }, ['1.5', '2', '2.0', '2.5', '2.25', '2.1234567', '2e0'], ['1.4', '2.6', '3', '-2', '1x5', '2}5', '1"5'], { note: '1x5, 2}5, 1"5 are not JSON' }));
  add(N, 'number minimum only', J({ type: 'number', minimum: 0 }, ['0', '1.5', '100'], ['-1', '-0.5']));
  add(N, 'number 0..100', J({ type: 'number', minimum: 0, maximum: 100 }, ['0', '50', '12.5', '100'], ['100.5', '101', '-1']));
  add(N, 'number exclusiveMinimum/exclusiveMaximum', J({ type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 }, ['0.5', '0.001'], ['0', '1', '-0.5']));
  add(N, 'multipleOf (integer)', J({ type: 'integer', multipleOf: 5 }, ['10', '0'], ['7']));
  add(N, 'multipleOf (number)', J({ type: 'number', multipleOf: 0.5 }, ['1.5', '2'], ['1.3']));
  add(N, 'minimum > maximum', J({ type: 'integer', minimum: 5, maximum: 1 }, [], []));

  const S = 'string';
  add(S, 'minLength/maxLength', J({ type: 'string', minLength: 2, maxLength: 3 }, ['"ab"', '"abc"', '"éé"', '"日本"', '"😀x"'], ['"a"', '"abcd"', '""']));
  add(S, 'minLength/maxLength with escapes', J({ type: 'string', minLength: 2, maxLength: 3 }, ['"\\n1"', '"a\\"b"', '"\\u00e9x"'], [], { note: '"\\n1" is 2 characters' }));
  add(S, 'maxLength: 0', J({ type: 'string', maxLength: 0 }, ['""'], ['"a"']));
  add(S, 'pattern (anchored)', J({ type: 'string', pattern: '^[a-z]+$' }, ['"abc"'], ['"ab1"', '""']));
  add(S, 'pattern (unanchored)', J({ type: 'string', pattern: '[0-9]{3}' }, ['"123"', '"ab123cd"'], ['"12"'], { note: 'JSON Schema patterns are unanchored searches: "ab123cd" is valid' }));
  add(S, 'pattern + maxLength', J({ type: 'string', pattern: '^[a-z]+$', maxLength: 3 }, ['"abc"'], ['"abcd"', '"ab1"']));
  add(S, 'pattern with lookahead', J({ type: 'string', pattern: '^(?=a)[a-z]+$' }, ['"abc"'], ['"bcd"']));
  add(S, 'format: date', J({ type: 'string', format: 'date' }, ['"2024-02-29"'], ['"2024-13-01"', '"yesterday"']));
  add(S, 'format: date-time', J({ type: 'string', format: 'date-time' }, ['"2024-02-29T12:30:00Z"', '"2024-02-29T12:30:00.5+02:00"'], ['"2024-02-29"', '"2024-02-29 12:30"']));
  add(S, 'format: time', J({ type: 'string', format: 'time' }, ['"12:30:00Z"'], ['"25:00"']));
  add(S, 'format: email', J({ type: 'string', format: 'email' }, ['"a.b@example.com"'], ['"not an email"', '"a@"']));
  add(S, 'format: uuid', J({ type: 'string', format: 'uuid' }, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567"', '"zzze4567-e89b-12d3-a456-426614174000"']));
  add(S, 'format: uri', J({ type: 'string', format: 'uri' }, ['"https://example.com/a?b=c"'], ['"not a uri"']));
  add(S, 'format: ipv4', J({ type: 'string', format: 'ipv4' }, ['"192.168.0.1"'], ['"256.1.1.1"', '"1.2.3"']));
  add(S, 'format: ipv6', J({ type: 'string', format: 'ipv6' }, ['"::1"', '"2001:db8::1"'], ['"1.2.3.4"']));
  add(S, 'format: hostname', J({ type: 'string', format: 'hostname' }, ['"example.com"'], ['"-bad-.com"', '"a b"']));
  add(S, 'format: unknown ("color")', J({ type: 'string', format: 'color' }, ['"red"'], []));

  const M = 'other';
  add(M, 'nullable (OpenAPI)', J({ type: 'string', nullable: true }, ['"a"', 'null'], ['1'], { note: 'OpenAPI 3.0 meaning: null allowed' }));
  add(M, 'annotations (title/description/default/examples/$comment/deprecated)', J({ type: 'integer', title: 't', description: 'd', default: 3, examples: [1], $comment: 'c', deprecated: false, readOnly: true }, ['1'], ['"a"']));
  add(M, 'unknown keyword ("foo")', J({ type: 'integer', foo: 1 }, ['1'], ['"a"']));
  add(M, '$schema / $id', J({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'https://example.com/s', type: 'integer' }, ['1'], ['"a"']));

  const TOP = 'top level';
  add(TOP, 'top-level {"type":"array"}', J({ type: 'array', items: { type: 'integer' } }, ['[1]', '[]'], ['{}']));
  add(TOP, 'top-level {"type":"string"}', J({ type: 'string' }, ['"a"'], ['{}']));
  add(TOP, 'empty schema {}', J({}, ['{}', '[1]', '"a"', '1', 'null', '{"a":{"b":[]}}'], []));
  add(TOP, 'true', { source: 'true', raw: true, valid: ['1', '{}', '"a"'], invalid: [] });
  add(TOP, 'false', { source: 'false', raw: true, valid: [], invalid: ['1'] });
  add(TOP, 'invalid JSON text', { source: '{"type": "object",', raw: true, valid: [], invalid: [] });
  add(TOP, 'not JSON at all', { source: 'hello', raw: true, valid: [], invalid: [] });
  add(TOP, 'empty string', { source: '', raw: true, valid: [], invalid: [] });
  add(TOP, '{"type":"foo"}', J({ type: 'foo' }, [], []));
  add(TOP, '{"type":42}', J({ type: 42 }, [], []));
  add(TOP, 'properties: not an object', J({ type: 'object', properties: [1] }, [], []));
  add(TOP, 'minLength > maxLength', J({ type: 'string', minLength: 3, maxLength: 1 }, [], []));
  add(TOP, 'enum: []', J({ enum: [] }, [], ['1']));
  add(TOP, 'a JSON array as schema', { source: '[1,2]', raw: true, valid: [], invalid: [] });

  const F = 'layout';
  const o = { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'array', items: { type: 'integer' } } }, required: ['a', 'b'] };
  const forms = ['{"a":1,"b":[1,2]}', '{"a": 1, "b": [1, 2]}', '{ "a" : 1 , "b" : [ 1 , 2 ] }', '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}'];
  const layoutNote = 'all four are valid JSON; "valid" lists the layout the option is meant to produce, the others are listed as "invalid" to show which are also accepted';
  add(F, 'anyWhitespace=false, indent=-1, separators [",",":"]', { source: o, valid: forms.slice(0, 1), invalid: forms.slice(1), anyWhitespace: false, separators: [',', ':'], note: layoutNote });
  add(F, 'anyWhitespace=false, indent=-1, separators default', { source: o, valid: forms.slice(1, 2), invalid: [forms[0]!, ...forms.slice(2)], anyWhitespace: false, note: 'default separators with indent=-1 are ", " and ": "' });
  add(F, 'anyWhitespace=false, indent=2', { source: o, valid: forms.slice(3), invalid: forms.slice(0, 3), anyWhitespace: false, indent: 2 });
  add(F, 'anyWhitespace=true, indent=-1', { source: o, valid: forms, invalid: [], anyWhitespace: true });
  add(F, 'anyWhitespace=true, leading/trailing whitespace', { source: o, valid: ['{"a":1,"b":[]}'], invalid: [' {"a":1,"b":[]}', '{"a":1,"b":[]} ', '{"a":1,"b":[]}\n'], anyWhitespace: true, note: 'the verdict says whether whitespace around the document is refused' });
  add(F, 'separators [",",":"]: untyped nested values', { source: { type: 'object', properties: { a: {} }, required: ['a'] }, valid: ['{"a":[1,2]}', '{"a":{"x":1,"y":2}}'], invalid: ['{"a":[1, 2]}', '{"a":{"x":1, "y":2}}'], anyWhitespace: false, separators: [',', ':'], note: 'free-form ("any") arrays and objects keep the default ", " comma' });
  add(F, 'separators default: untyped nested values', { source: { type: 'object', properties: { a: {} }, required: ['a'] }, valid: ['{"a": [1, 2]}', '{"a": {"x": 1, "y": 2}}'], invalid: ['{"a": {"x":1, "y":2}}'], anyWhitespace: false });
  add(F, 'anyWhitespace=true, maxWhitespaceCnt=2', { source: { type: 'object', properties: { a: {} }, required: ['a'] }, valid: ['{"a":1}', '{"a":  1}', '{ "a" :  [1 ,  2] }'], invalid: ['{"a":   1}'], anyWhitespace: true, maxWhitespaceCnt: 2 });
  add(F, 'string escapes and control characters', J({ type: 'string' }, ['"a\\"b"', '"\\u00e9"', '"\\n"', '"日本"', '"😀"'], ['"a\nb"', '"\\x"', '"\t"']));
  add(F, 'property name with a quote', J({ type: 'object', properties: { 'a"b': { type: 'integer' } }, required: ['a"b'] }, ['{"a\\"b":1}'], []));
  add(F, 'property name with a backslash', J({ type: 'object', properties: { 'c\\d': { type: 'integer' } }, required: ['c\\d'] }, ['{"c\\\\d":2}'], []));
  add(F, 'property name with non-ASCII and regex characters', J({ type: 'object', properties: { 'é.*|日本': { type: 'integer' } }, required: ['é.*|日本'] }, ['{"é.*|日本":3}'], ['{"éx|日本":3}']));
  add(F, 'compileBuiltinJSONGrammar', { kind: 'builtin', source: 'builtin', valid: ['{}', '{"a":[1,{"b":null}]}', '{ "a" : 1 }'], invalid: ['[1]', '1', '"a"', ' {}'] });
  add(F, '{"type":"object"} as json_object', J({ type: 'object' }, ['{}', '{"a":[1,{"b":null}]}', '{ "a" : 1 }'], ['[1]', '1']));
  return c;
}

export function regexCases(): Case[] {
  const c: Case[] = [];
  const add = (keyword: string, pattern: string, valid: string[], invalid: string[], note?: string) =>
    c.push({ group: 'regex', keyword, kind: 'regex', source: pattern, valid, invalid, note });
  add('literal', 'abc', ['abc'], ['ab', 'abcd', 'xabc'], 'full match: "xabc" and "abcd" are rejected');
  add('character class [a-c]', '[a-c]+x', ['abx', 'cx'], ['dx', 'x']);
  add('negated class [^0-9]', '[^0-9]+', ['ab!', 'é'], ['a1']);
  add('dot .', 'a.c', ['abc', 'a-c', 'aéc', 'a日c'], ['ac', 'a\nc'], 'JavaScript/Python semantics: any character but a line break');
  add('quantifiers * + ?', 'a*b+c?', ['b', 'aabbc'], ['a', 'cc']);
  add('{m}', 'a{3}', ['aaa'], ['aa', 'aaaa']);
  add('{m,n}', 'a{2,3}', ['aa', 'aaa'], ['a', 'aaaa']);
  add('{m,}', 'a{2,}', ['aa', 'aaaaaaa'], ['a']);
  add('{,n}', 'a{,2}', ['', 'aa'], ['aaa']);
  add('lazy quantifier +?', 'a+?b', ['aab'], ['b']);
  add('alternation |', 'cat|dog|bird', ['cat', 'dog', 'bird'], ['cow', 'catdog']);
  add('groups ( ) and (?: )', '(ab)+(?:cd)?', ['abab', 'abcd'], ['cd', 'aba']);
  add('named group (?<n> )', '(?<x>ab)+', ['abab'], ['a']);
  add('anchors ^ $', '^abc$', ['abc'], ['xabc', 'abcx']);
  add('\\d \\w \\s', '\\d+\\s\\w+', ['12 ab_9', '1\tx'], ['a b', '12  ab']);
  add('\\D \\W \\S', '\\D\\W\\S', ['a b', 'x-y'], ['1 b', 'aab']);
  add('\\b word boundary', '\\bab\\b', ['ab'], []);
  add('escapes \\. \\* \\n \\t \\/', 'a\\.b\\*c\\n\\t\\/', ['a.b*c\n\t/'], ['axb*c\n\t/']);
  add('\\uXXXX / \\xXX escapes', '\\u00e9\\x41', ['éA'], ['eA']);
  add('unicode literal', '日本語', ['日本語'], ['日本']);
  add('unicode class range [α-ω]', '[α-ω]+', ['αβ', 'ω'], ['ab']);
  add('unicode class members [éè]', '[éè]x', ['éx', 'èx'], ['ex']);
  add('negated class with non-ASCII input', '[^a]+', ['é日', 'b'], ['a']);
  add('unicode property \\p{L}', '\\p{L}+', ['abé'], ['12']);
  add('lookahead (?=...)', '(?=a)\\w+', ['abc'], ['bcd']);
  add('negative lookahead (?!...)', '(?!a)\\w+', ['bcd'], ['abc']);
  add('lookbehind (?<=...)', '(?<=a)b', ['b'], []);
  add('backreference \\1', '(a|b)\\1', ['aa', 'bb'], ['ab']);
  add('inline flag (?i)', '(?i)abc', ['abc', 'ABC'], ['abd']);
  add('unbalanced parenthesis', '(ab', [], []);
  add('empty pattern', '', [''], ['a']);
  add('typical: ISO date', '\\d{4}-\\d{2}-\\d{2}', ['2024-01-31'], ['2024-1-31']);
  add('typical: phone', '\\(\\d{3}\\) \\d{3}-\\d{4}', ['(555) 123-4567'], ['555-123-4567']);
  add('typical: email-ish', '[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}', ['a.b@ex.com'], ['a@b']);
  return c;
}

export function ebnfCases(): Case[] {
  const c: Case[] = [];
  const add = (keyword: string, grammar: string, valid: string[], invalid: string[], note?: string) =>
    c.push({ group: 'ebnf', keyword, kind: 'ebnf', source: grammar, valid, invalid, note });
  add('alternation of literals', 'root ::= "yes" | "no"', ['yes', 'no'], ['maybe', 'yesno']);
  add('rules, groups, * + ?', 'root ::= greeting ("," ws name)+ "!"?\ngreeting ::= "hi" | "hello"\nname ::= [A-Z] [a-z]*\nws ::= " "*', ['hi, Ann', 'hello, Bo,  Cy!'], ['hi', 'hi, ann']);
  add('character classes, negation, escapes', 'root ::= "\\"" [^"\\\\\\n]* "\\"" [\\t ]? [\\u00e9]', ['"abc"\té', '""é'], ['"a"b"é']);
  add('repetition {m,n}', 'root ::= [0-9]{2,4}', ['12', '1234'], ['1', '12345']);
  add('repetition {m} and {m,}', 'root ::= "a"{2} "b"{1,}', ['aab', 'aabbb'], ['ab', 'aa']);
  add('comments #', '# a comment\nroot ::= "a" # trailing\n', ['a'], ['b']);
  add('recursion', 'root ::= "(" root ")" | ""', ['', '(())'], ['(()']);
  add('lookahead assertion (= ...)', 'root ::= a [a-z]\na ::= "cd" (=[a-z])', ['cdx'], ['cd1']);
  add('GBNF (llama.cpp) JSON-ish grammar', [
    'root   ::= object',
    'value  ::= object | array | string | number | ("true" | "false" | "null") ws',
    'object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws',
    'array  ::= "[" ws ( value ("," ws value)* )? "]" ws',
    'string ::= "\\"" ( [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\\"" ws',
    'number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws',
    'ws ::= "" | " " | "\\n" [ \\t]{0,20}',
  ].join('\n'), ['{"a": [1, "x", true]}'], ['{"a": [1, "x", tru]}']);
  c.push({ group: 'ebnf', keyword: 'rootRule argument ("main")', kind: 'ebnf', source: 'main ::= "a" b\nb ::= "b"', rootRule: 'main', valid: ['ab'], invalid: ['a'] });
  add('no rule named root (default rootRule)', 'main ::= "a"', [], []);
  add('empty alternative "::= | x" (GBNF allows it)', 'root ::= | "a"', [''], []);
  add('missing root rule', 'foo ::= "a"', [], []);
  add('undefined rule reference', 'root ::= foo', [], []);
  add('unterminated string', 'root ::= "a', [], []);
  add('":=" instead of "::="', 'root := "a"', [], []);
  add('empty grammar', '', [], []);
  add('Lark syntax (not supported)', 'start: "a"+', [], []);
  add('A - B exclusion (documented as unsupported)', 'root ::= [a-z]+ - "ab"', [], []);
  return c;
}

// ---- running ---------------------------------------------------------------------------

interface Ctx { x: XG; compiler: GrammarCompiler; stopId: number }

async function smallCompiler(x: XG): Promise<Ctx> {
  const b2u = byteToUnicode();
  const vocab = [...b2u, '<|im_end|>'];
  const info = await x.TokenizerInfo.createTokenizerInfo(vocab, 'byte_level', false, vocab.length, [256]);
  const compiler = await x.GrammarCompiler.createGrammarCompiler(info, false);
  return { x, compiler, stopId: 256 };
}

function sourceText(c: Case): string {
  if (c.kind === 'builtin') return '(builtin)';
  if (c.kind === 'json' || c.kind === undefined) return c.raw ? String(c.source) : s(c.source);
  return String(c.source);
}

async function grammarFor(ctx: Ctx, c: Case) {
  const { x } = ctx;
  const kind = c.kind ?? 'json';
  const text = sourceText(c);
  if (kind === 'builtin') return { grammar: await x.Grammar.builtinJSONGrammar(), compiled: await ctx.compiler.compileBuiltinJSONGrammar() };
  if (kind === 'json') {
    const seps = c.separators === null || c.separators === undefined ? undefined : c.separators;
    const ws = c.anyWhitespace ?? true;
    const indent = c.indent ?? -1;
    const strict = c.strict ?? true;
    return {
      grammar: await x.Grammar.fromJSONSchema(text, ws, indent, seps as [string, string] | undefined, strict, c.maxWhitespaceCnt),
      compiled: await ctx.compiler.compileJSONSchema(text, ws, indent, seps as [string, string] | undefined, strict, c.maxWhitespaceCnt),
    };
  }
  if (kind === 'regex') {
    const tag = { type: 'structural_tag', format: { type: 'regex', pattern: text } };
    return { grammar: await x.Grammar.fromStructuralTag(tag), compiled: await ctx.compiler.compileStructuralTag(tag) };
  }
  const root = c.rootRule ?? 'root';
  return { grammar: await x.Grammar.fromEBNF(text, root), compiled: await ctx.compiler.compileGrammar(text, root) };
}

async function matcherAccepts(ctx: Ctx, compiled: CompiledGrammar, str: string): Promise<boolean> {
  const m = await ctx.x.GrammarMatcher.createGrammarMatcher(compiled, [ctx.stopId]);
  try {
    if (str.length > 0 && !m._acceptString(str)) return false;
    return m.acceptToken(ctx.stopId);
  } finally {
    m.dispose();
  }
}

export async function runCase(ctx: Ctx, c: Case): Promise<Outcome> {
  const base = { group: c.group, keyword: c.keyword, note: c.note, source: sourceText(c), acceptedInvalid: [] as string[], rejectedValid: [] as string[], matcherDisagrees: [] as string[], warnings: [] as string[] };
  const run = await captureOutput(async (): Promise<Outcome> => {
    const built = await captureOutput(() => grammarFor(ctx, c));
    if (!built.ok || !built.value) {
      base.warnings.push(...warnings(built.stdout + built.stderr));
      return { ...base, verdict: 'error', error: fatalMessage(built.stderr) || `(nothing printed; thrown: ${built.error})` };
    }
    process.stdout.write(built.stdout);
    const { grammar, compiled } = built.value;
    const check = async (str: string) => {
      const a = await ctx.x.Testings.isGrammarAcceptString(grammar, str);
      const b = await matcherAccepts(ctx, compiled, str);
      if (a !== b) base.matcherDisagrees.push(`${s(str)}: isGrammarAcceptString=${a}, matcher=${b}`);
      return a;
    };
    for (const v of c.valid) if (!(await check(v))) base.rejectedValid.push(v);
    for (const v of c.invalid) if (await check(v)) base.acceptedInvalid.push(v);
    grammar.dispose();
    compiled.dispose();
    let verdict: Outcome['verdict'];
    if (base.rejectedValid.length > 0) verdict = 'rejects valid';
    else if (c.invalid.length === 0) verdict = 'compiles';
    else if (base.acceptedInvalid.length === 0) verdict = 'enforced';
    else if (base.acceptedInvalid.length === c.invalid.length) verdict = 'ignored';
    else verdict = 'partial';
    return { ...base, verdict };
  });
  if (!run.ok || !run.value) return { ...base, verdict: 'error', error: `(while checking strings: ${run.error})` };
  const out = run.value;
  out.warnings = [...new Set([...out.warnings, ...warnings(run.stdout + run.stderr)])];
  return out;
}

const cell = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, '\\n').replace(/\t/g, '\\t');

export function markdown(rows: Outcome[]): string {
  const lines = ['| group | case | verdict | details |', '|---|---|---|---|'];
  for (const r of rows) {
    const d: string[] = [];
    if (r.error) d.push(`\`${cell(r.error)}\``);
    if (r.rejectedValid.length) d.push(`rejects valid: ${r.rejectedValid.map((v) => `\`${cell(v)}\``).join(', ')}`);
    if (r.acceptedInvalid.length) d.push(`accepts invalid: ${r.acceptedInvalid.map((v) => `\`${cell(v)}\``).join(', ')}`);
    if (r.warnings.length) d.push(`warning: ${r.warnings.map((w) => `\`${cell(w)}\``).join(', ')}`);
    if (r.matcherDisagrees.length) d.push(`matcher disagrees: ${cell(r.matcherDisagrees.join('; '))}`);
    if (r.note) d.push(`(${cell(r.note)})`);
    lines.push(`| ${r.group} | ${cell(r.keyword)} | ${r.verdict} | ${d.join('; ')} |`);
  }
  return lines.join('\n');
}


// ---- numeric bounds fuzz -------------------------------------------------------------------

export interface FuzzRow { family: string; schemas: number; wrong: number; acceptsOutOfRange: number; rejectsInRange: number; acceptsNonNumber: number; examples: string[] }

/**
 * Random integer and number bounds (minimum / maximum / exclusive*, positive and negative, 1 to 6
 * digits), each checked on the values around its bounds and a random sample (integers: every
 * integer within 15 of a bound; numbers: steps of 0.1 and 0.05 around the bounds, printed with
 * and without a fraction), plus, for numbers, the bound with its "." replaced by "x" (not JSON).
 */
export async function numericFuzz(x: XG, perFamily = 60, seed = 7): Promise<FuzzRow[]> {
  let st = seed >>> 0;
  const rnd = () => { st = (Math.imul(st, 1664525) + 1013904223) >>> 0; return st / 4294967296; };
  const mag = () => [10, 100, 1000, 100000][Math.floor(rnd() * 4)]!;
  const rows: FuzzRow[] = [];
  type Fam = { family: string; make: () => { schema: Record<string, unknown>; ok: (v: number) => boolean; probes: string[]; junk: string[] } };
  const intProbes = (bounds: number[], m: number) => {
    const p = new Set<number>();
    for (const b of bounds) for (let d = -15; d <= 15; d++) p.add(b + d);
    for (let i = 0; i < 30; i++) p.add(Math.floor((rnd() - 0.5) * 4 * m));
    for (const v of [0, 1, 9, 10, 99, 100, -1, -9, -10, -100]) p.add(v);
    return [...p].map(String);
  };
  const numProbes = (bounds: number[]) => {
    const p = new Set<string>();
    for (const b of bounds) {
      for (let d = -20; d <= 20; d++) {
        const v = Math.round((b + d * 0.05) * 1000) / 1000;
        p.add(String(v));
        if (Number.isInteger(v)) p.add(v.toFixed(1));
      }
    }
    return [...p];
  };
  const r2 = (v: number) => Math.round(v * 100) / 100;
  const fams: Fam[] = [
    { family: 'integer minimum', make: () => { const m = mag(); const lo = Math.floor((rnd() - 0.4) * m); return { schema: { type: 'integer', minimum: lo }, ok: (v) => v >= lo, probes: intProbes([lo], m), junk: [] }; } },
    { family: 'integer maximum', make: () => { const m = mag(); const hi = Math.floor((rnd() - 0.4) * m); return { schema: { type: 'integer', maximum: hi }, ok: (v) => v <= hi, probes: intProbes([hi], m), junk: [] }; } },
    { family: 'integer minimum+maximum', make: () => { const m = mag(); const lo = Math.floor((rnd() - 0.4) * m); const hi = lo + Math.floor(rnd() * m); return { schema: { type: 'integer', minimum: lo, maximum: hi }, ok: (v) => v >= lo && v <= hi, probes: intProbes([lo, hi], m), junk: [] }; } },
    { family: 'integer exclusiveMinimum+exclusiveMaximum', make: () => { const m = mag(); const lo = Math.floor((rnd() - 0.4) * m); const hi = lo + 2 + Math.floor(rnd() * m); return { schema: { type: 'integer', exclusiveMinimum: lo, exclusiveMaximum: hi }, ok: (v) => v > lo && v < hi, probes: intProbes([lo, hi], m), junk: [] }; } },
    { family: 'number minimum', make: () => { const lo = r2((rnd() - 0.4) * mag()); return { schema: { type: 'number', minimum: lo }, ok: (v) => v >= lo, probes: numProbes([lo]), junk: [] }; } },
    { family: 'number maximum', make: () => { const hi = r2((rnd() - 0.4) * mag()); return { schema: { type: 'number', maximum: hi }, ok: (v) => v <= hi, probes: numProbes([hi]), junk: [] }; } },
    { family: 'number minimum+maximum', make: () => { const m = mag(); const lo = r2((rnd() - 0.4) * m); const hi = r2(lo + 0.5 + rnd() * m); return { schema: { type: 'number', minimum: lo, maximum: hi }, ok: (v) => v >= lo && v <= hi, probes: numProbes([lo, hi]), junk: [String(lo).includes('.') ? String(lo).replace('.', 'x') : String(lo) + 'x0'] }; } },
    { family: 'number exclusiveMinimum+exclusiveMaximum', make: () => { const m = mag(); const lo = r2((rnd() - 0.4) * m); const hi = r2(lo + 0.5 + rnd() * m); return { schema: { type: 'number', exclusiveMinimum: lo, exclusiveMaximum: hi }, ok: (v) => v > lo && v < hi, probes: numProbes([lo, hi]), junk: [] }; } },
  ];
  for (const fam of fams) {
    const row: FuzzRow = { family: fam.family, schemas: 0, wrong: 0, acceptsOutOfRange: 0, rejectsInRange: 0, acceptsNonNumber: 0, examples: [] };
    for (let k = 0; k < perFamily; k++) {
      const { schema, ok, probes, junk } = fam.make();
      const built = await captureOutput(() => x.Grammar.fromJSONSchema(s(schema), true, -1, undefined, true));
      row.schemas++;
      if (!built.ok || !built.value) { row.wrong++; if (row.examples.length < 3) row.examples.push(`${s(schema)}: error ${fatalMessage(built.stderr)}`); continue; }
      const g = built.value;
      const out: string[] = [], inn: string[] = [], non: string[] = [];
      for (const p of probes) {
        const a = await x.Testings.isGrammarAcceptString(g, p);
        const want = ok(Number(p));
        if (a && !want) out.push(p);
        if (!a && want) inn.push(p);
      }
      for (const j of junk) if (await x.Testings.isGrammarAcceptString(g, j)) non.push(j);
      g.dispose();
      if (out.length) row.acceptsOutOfRange++;
      if (inn.length) row.rejectsInRange++;
      if (non.length) row.acceptsNonNumber++;
      if (out.length || inn.length || non.length) {
        row.wrong++;
        if (row.examples.length < 3) {
          const parts = [out.length ? `accepts ${out.slice(0, 4).join(', ')}` : '', inn.length ? `rejects ${inn.slice(0, 4).join(', ')}` : '', non.length ? `accepts non-JSON ${non.join(', ')}` : ''].filter(Boolean);
          row.examples.push(`${s(schema)}: ${parts.join('; ')}`);
        }
      }
    }
    rows.push(row);
  }
  return rows;
}

export function fuzzMarkdown(rows: FuzzRow[]): string {
  const lines = ['| bounds | schemas | wrong verdicts | accept out-of-range | reject in-range | accept non-JSON | examples |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.family} | ${r.schemas} | ${r.wrong} | ${r.acceptsOutOfRange} | ${r.rejectsInRange} | ${r.acceptsNonNumber} | ${r.examples.map((e) => `\`${cell(e)}\``).join('<br>')} |`);
  return lines.join('\n');
}

const SELF = fileURLToPath(import.meta.url);

function allCases(): Case[] {
  return [...jsonCases(), ...regexCases(), ...ebnfCases()];
}

/** Worker: runs the cases it is sent (by index) in its own module instance. */
async function workerMain(): Promise<void> {
  const x = xg();
  const ctx = await smallCompiler(x);
  const cases = allCases();
  parentPort!.on('message', async (msg: { index?: number; fuzz?: boolean }) => {
    if (msg.fuzz) { parentPort!.postMessage({ fuzz: await numericFuzz(x) }); return; }
    parentPort!.postMessage({ outcome: await runCase(ctx, cases[msg.index!]!) });
  });
  parentPort!.postMessage({ ready: true });
}

/**
 * Every failed compile leaves the module damaged (abort() never unwinds the C++ stack; see
 * aborts.ts), so the cases run in a worker thread that is replaced after each case that
 * errored: every case runs in a module that has seen no failure.
 */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  let worker: Worker | null = null;
  let restarts = 0;
  const fresh = async () => {
    if (worker) { await worker.terminate(); restarts++; }
    worker = new Worker(SELF);
    await new Promise((res) => worker!.once('message', res));
  };
  const ask = <T>(msg: unknown) => new Promise<T>((res, rej) => {
    const w = worker!;
    const onError = (e: Error) => { w.off('message', onMessage); rej(e); };
    const onMessage = (m: T) => { w.off('error', onError); res(m); };
    w.once('message', onMessage);
    w.once('error', onError);
    w.postMessage(msg);
  });
  await fresh();
  const cases = allCases();
  const rows: Outcome[] = [];
  for (let i = 0; i < cases.length; i++) {
    const { outcome } = await ask<{ outcome: Outcome }>({ index: i });
    rows.push(outcome);
    if (outcome.verdict === 'error' && i + 1 < cases.length) await fresh();
  }
  await fresh();
  const { fuzz } = await ask<{ fuzz: FuzzRow[] }>({ fuzz: true });
  await worker!.terminate();
  const md = `${markdown(rows)}\n\nNumeric bounds fuzz (random bounds, probed around them):\n\n${fuzzMarkdown(fuzz)}`;
  console.log(md);
  const counts: Record<string, number> = {};
  for (const r of rows) counts[r.verdict] = (counts[r.verdict] ?? 0) + 1;
  console.error(`[xgeval] ${rows.length} cases: ${s(counts)}; matcher disagreements: ${rows.reduce((a, r) => a + r.matcherDisagrees.length, 0)}; module restarts after errors: ${restarts}`);
  const jsonOut = opt('--json');
  if (jsonOut) writeFileSync(jsonOut, s({ cases: rows, fuzz }, null, 2));
  const mdOut = opt('--md');
  if (mdOut) writeFileSync(mdOut, md + '\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (isMainThread) await main();
  else await workerMain();
}
