/**
 * A JSON Schema checker for tests (the keywords the tests' schemas use): returns the first
 * violation as a JSON pointer and reason, or null. Independent of the grammar engine, so a test
 * can tell whether constrained output really conforms.
 */
export function schemaViolation(value: unknown, schema: unknown, root: unknown = schema, path = '#'): string | null {
  if (schema === true || schema === undefined) return null;
  if (schema === false) return `${path}: no value is allowed`;
  const s = schema as Record<string, any>;
  if (s.$ref) {
    const target = (s.$ref as string).slice(2).split('/').reduce((o: any, k: string) => o?.[k], root);
    return schemaViolation(value, target, root, path);
  }
  const fail = (why: string) => `${path}: ${why} (got ${JSON.stringify(value)})`;
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    const ok = types.some((t) => t === actual || (t === 'integer' && typeof value === 'number' && Number.isInteger(value)));
    if (!ok) return fail(`type must be ${types.join(' or ')}`);
  }
  if (s.const !== undefined && JSON.stringify(value) !== JSON.stringify(s.const)) return fail(`must be ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.some((e: unknown) => JSON.stringify(e) === JSON.stringify(value))) return fail(`must be one of ${JSON.stringify(s.enum)}`);
  if (s.anyOf && !s.anyOf.some((sub: unknown) => schemaViolation(value, sub, root, path) === null)) return fail('matches none of anyOf');
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) return fail(`below minimum ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) return fail(`above maximum ${s.maximum}`);
    if (s.exclusiveMinimum !== undefined && value <= s.exclusiveMinimum) return fail(`not above ${s.exclusiveMinimum}`);
    if (s.exclusiveMaximum !== undefined && value >= s.exclusiveMaximum) return fail(`not below ${s.exclusiveMaximum}`);
  }
  if (typeof value === 'string') {
    const len = [...value].length;
    if (s.minLength !== undefined && len < s.minLength) return fail(`shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && len > s.maxLength) return fail(`longer than ${s.maxLength}`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(value)) return fail(`does not match ${s.pattern}`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) return fail(`fewer than ${s.minItems} items`);
    if (s.maxItems !== undefined && value.length > s.maxItems) return fail(`more than ${s.maxItems} items`);
    for (let i = 0; i < value.length; i++) {
      const v = schemaViolation(value[i], s.items, root, `${path}/${i}`);
      if (v) return v;
    }
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const k of s.required ?? []) if (!(k in obj)) return fail(`misses required "${k}"`);
    for (const [k, v] of Object.entries(obj)) {
      const sub = s.properties?.[k] ?? s.additionalProperties;
      if (sub === false) return fail(`has property "${k}", which is not allowed`);
      const r = schemaViolation(v, sub, root, `${path}/${k}`);
      if (r) return r;
    }
  }
  return null;
}
