import { InvalidRequestError } from '../../errors.js';
import { Constraint } from '../../structured/constraint.js';
import { SchemaError, checkJsonSchema } from '../../structured/schemaCheck.js';

/** The constraint fields a request may carry: OpenAI's response_format and SGLang's regex, ebnf and json_schema. */
export interface ConstraintFields {
  response_format?: unknown;
  regex?: unknown;
  ebnf?: unknown;
  json_schema?: unknown;
}

function schemaConstraint(schema: unknown, strict: boolean, field: string): Constraint {
  try {
    checkJsonSchema(schema);
  } catch (e) {
    if (e instanceof SchemaError) throw new InvalidRequestError(`${field}: ${e.message}`, field);
    throw e;
  }
  return { kind: 'json_schema', schema: JSON.stringify(schema), strict };
}

function responseFormat(rf: unknown): Constraint | null {
  const field = 'response_format';
  if (rf === null || typeof rf !== 'object' || Array.isArray(rf)) throw new InvalidRequestError(`${field} must be an object with a "type"`, field);
  const r = rf as { type?: unknown; json_schema?: unknown };
  switch (r.type) {
    case 'text':
      return null;
    case 'json_object':
      return { kind: 'json_object' };
    case 'json_schema': {
      const js = r.json_schema as { name?: unknown; schema?: unknown; strict?: unknown } | undefined;
      if (!js || typeof js !== 'object') throw new InvalidRequestError(`${field}.json_schema must be an object with "name" and "schema"`, field);
      if (js.name !== undefined && (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name))) {
        throw new InvalidRequestError(`${field}.json_schema.name must be 1-64 letters, digits, underscores or dashes`, field);
      }
      if (js.strict !== undefined && js.strict !== null && typeof js.strict !== 'boolean') throw new InvalidRequestError(`${field}.json_schema.strict must be a boolean`, field);
      // OpenAI: a missing schema means any JSON object.
      if (js.schema === undefined) return { kind: 'json_object' };
      return schemaConstraint(js.schema, js.strict === true, `${field}.json_schema.schema`);
    }
    default:
      throw new InvalidRequestError(`${field}.type must be "text", "json_object" or "json_schema", got ${JSON.stringify(r.type)}`, field);
  }
}

/**
 * The request's output constraint, or null. At most one may be given; each is checked here (the
 * grammar itself compiles on the engine's grammar thread, whose errors are 400s too).
 */
export function constraintFromRequest(f: ConstraintFields): Constraint | null {
  const given = (['response_format', 'regex', 'ebnf', 'json_schema'] as const).filter((k) => f[k] !== undefined && f[k] !== null && !(k === 'response_format' && (f[k] as { type?: unknown }).type === 'text'));
  if (given.length > 1) throw new InvalidRequestError(`give at most one output constraint; this request has ${given.join(' and ')}`, given[1]!);
  const k = given[0];
  if (!k) return f.response_format !== undefined && f.response_format !== null ? responseFormat(f.response_format) : null;
  const value = f[k];
  switch (k) {
    case 'response_format':
      return responseFormat(value);
    case 'regex':
    case 'ebnf':
      if (typeof value !== 'string' || value.length === 0) throw new InvalidRequestError(`${k} must be a non-empty string`, k);
      return k === 'regex' ? { kind: 'regex', pattern: value } : { kind: 'ebnf', grammar: value };
    case 'json_schema': {
      // SGLang takes the schema as JSON text; an object is accepted too.
      let schema = value;
      if (typeof value === 'string') {
        try {
          schema = JSON.parse(value);
        } catch (e) {
          throw new InvalidRequestError(`json_schema is not valid JSON: ${(e as Error).message}`, k);
        }
      }
      return schemaConstraint(schema, true, 'json_schema');
    }
  }
}
