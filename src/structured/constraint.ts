/**
 * What a request constrains its output to: a JSON schema, any JSON object, a regular expression,
 * an EBNF grammar, or an xgrammar structural tag (tool calls). Plain data: it crosses threads and
 * its JSON text is the compiled grammar's cache key.
 */
export type Constraint =
  | { kind: 'json_schema'; schema: string; strict: boolean }
  | { kind: 'json_object' }
  | { kind: 'regex'; pattern: string }
  | { kind: 'ebnf'; grammar: string }
  | { kind: 'structural_tag'; tag: string };

/** The compiled-grammar cache key of a constraint. */
export function constraintKey(c: Constraint): string {
  return JSON.stringify(c);
}

/** The request field a constraint came from, for error messages. */
export function constraintField(c: Constraint): string {
  switch (c.kind) {
    case 'json_schema':
    case 'json_object':
      return 'response_format';
    case 'structural_tag':
      return 'tools';
    default:
      return c.kind;
  }
}
