/**
 * Checks a JSON schema before it is compiled: xgrammar enforces most keywords, but silently
 * ignores some, and an ignored keyword would let through output the client's schema forbids.
 * Those are refused with the keyword and where it is, so a client never gets JSON that only
 * looks conforming.
 */

/**
 * Keywords whose constraint the grammar enforces (measured with xgrammar 0.1.27, see
 * docs/structured-output.md). oneOf is enforced as anyOf: an output may match several branches.
 */
const ENFORCED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'minItems', 'maxItems',
  'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', '$defs', 'definitions',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'format',
  'minProperties', 'maxProperties', 'unevaluatedProperties', 'unevaluatedItems', 'propertyNames', 'patternProperties',
]);

/** Keywords that say nothing about valid values. */
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', 'title', 'description', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', 'name', 'strict', '$anchor']);

/** Sub-schema positions: keyword -> how its value holds schemas. */
const CHILDREN: Record<string, 'map' | 'list' | 'one'> = {
  properties: 'map', $defs: 'map', definitions: 'map', patternProperties: 'map',
  items: 'one', additionalProperties: 'one', unevaluatedProperties: 'one', unevaluatedItems: 'one', propertyNames: 'one',
  prefixItems: 'list', anyOf: 'list', oneOf: 'list', allOf: 'list',
};

/** JSON Schema's types. */
export const JSON_TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

/** Largest string length bound accepted. */
const MAX_STRING_BOUND = 256;

/** String formats the grammar enforces (others would be ignored). */
const FORMATS = new Set(['date', 'date-time', 'time', 'email', 'uuid', 'uri', 'ipv4', 'ipv6', 'hostname']);

export class SchemaError extends Error {}

/** Throws a SchemaError naming the first unsupported or malformed keyword and its JSON pointer. */
export function checkJsonSchema(schema: unknown, path = '#'): void {
  if (typeof schema === 'boolean') return;
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new SchemaError(`the schema at ${path} must be an object or a boolean`);
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    const at = `${path}/${key}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!ENFORCED.has(key)) throw new SchemaError(`keyword "${key}" (at ${at}) is not supported`);
    if (key === 'type') {
      const types = Array.isArray(value) ? value : [value];
      for (const t of types) if (typeof t !== 'string' || !JSON_TYPES.has(t)) throw new SchemaError(`"type" at ${at} must be one of ${[...JSON_TYPES].join(', ')}, got ${JSON.stringify(t)}`);
    }
    if (key === 'required') {
      if (!(Array.isArray(value) && value.every((v) => typeof v === 'string'))) throw new SchemaError(`"required" at ${at} must be an array of strings`);
      // xgrammar drops a required name that is not among the properties (measured).
      const props = (schema as { properties?: Record<string, unknown> }).properties ?? {};
      const missing = value.find((v) => !(v in props));
      if (missing !== undefined) throw new SchemaError(`required property "${missing}" (at ${at}) is not in "properties"`);
    }
    // Measured with xgrammar 0.1.27: it ignores allOf of several schemas, and minLength/maxLength/format beside a pattern.
    if (key === 'allOf' && Array.isArray(value) && value.length > 1) throw new SchemaError(`"allOf" with more than one schema (at ${at}) is not supported`);
    if (key === 'pattern' && ['minLength', 'maxLength', 'format'].some((k) => k in (schema as object))) throw new SchemaError(`"pattern" together with minLength, maxLength or format (at ${path}) is not supported; put the length in the pattern`);
    // Compiling grows with the bound (at a 152k vocabulary: 2.8 s for 64, 9.5 s for 256, measured).
    if ((key === 'maxLength' || key === 'minLength') && typeof value === 'number' && value > MAX_STRING_BOUND) {
      throw new SchemaError(`"${key}": ${value} (at ${at}) is above ${MAX_STRING_BOUND}, which would take minutes to compile; leave the string unbounded instead`);
    }
    if (key === 'format' && !FORMATS.has(value as string)) throw new SchemaError(`"format": ${JSON.stringify(value)} (at ${at}) is not supported; supported: ${[...FORMATS].join(', ')}`);
    if (key === 'enum' && !Array.isArray(value)) throw new SchemaError(`"enum" at ${at} must be an array`);
    const kind = CHILDREN[key];
    if (kind === 'one') checkJsonSchema(value, at);
    else if (kind === 'list') {
      if (!Array.isArray(value)) throw new SchemaError(`"${key}" at ${at} must be an array of schemas`);
      value.forEach((v, i) => checkJsonSchema(v, `${at}/${i}`));
    } else if (kind === 'map') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new SchemaError(`"${key}" at ${at} must be an object of schemas`);
      for (const [k, v] of Object.entries(value)) checkJsonSchema(v, `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
    }
  }
}
