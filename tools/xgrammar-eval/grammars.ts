/**
 * The grammars the speed, memory and threading measurements use: a typical response_format
 * schema, json_object, a regex and a 31-rule EBNF.
 */

/**
 * A typical structured-output schema: 8 properties, bounded strings (maxLength 20 to 80), a date-time, an
 * integer range, an enum, a nested object, an array of objects with minItems/maxItems, a nullable field.
 */
export function typicalSchema(variant = 0): Record<string, unknown> {
  const suffix = variant === 0 ? '' : `_${variant}`;
  return {
    type: 'object',
    properties: {
      [`name${suffix}`]: { type: 'string', maxLength: 64 + variant },
      created_at: { type: 'string', format: 'date-time' },
      age: { type: 'integer', minimum: 0, maximum: 130 },
      status: { type: 'string', enum: ['active', 'inactive', 'pending', `banned${suffix}`] },
      address: {
        type: 'object',
        properties: { street: { type: 'string', maxLength: 80 }, city: { type: 'string', maxLength: 40 }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
        required: ['street', 'city'],
      },
      orders: {
        type: 'array',
        minItems: 1,
        maxItems: 5,
        items: {
          type: 'object',
          properties: { sku: { type: 'string', maxLength: 20 }, quantity: { type: 'integer', minimum: 1, maximum: 99 }, price: { type: 'number' } },
          required: ['sku', 'quantity'],
        },
      },
      nickname: { type: ['string', 'null'], maxLength: 32 },
      verified: { type: 'boolean' },
    },
    required: [`name${suffix}`, 'created_at', 'age', 'status', 'orders', 'nickname'],
    additionalProperties: false,
  };
}

export const JSON_OBJECT_SCHEMA = '{"type":"object"}';

/** A regex of the kind SGLang's `regex` parameter carries: a small record line. */
export const REGEX = '(Mr|Ms|Dr)\\. [A-Z][a-z]{1,15} [A-Z][a-z]{1,20}, born \\d{4}-\\d{2}-\\d{2}, phone \\(\\d{3}\\) \\d{3}-\\d{4}, email [a-z0-9._]{1,20}@[a-z0-9-]{1,15}\\.(com|org|net)';

/** 31 rules: a small statement language (assignments, calls, if/else, expressions, literals). */
export const EBNF_31 = `root ::= ws statement (ws statement){0,7} ws
statement ::= assign | call | ifstmt | ret
assign ::= ident ws "=" ws expr ";"
call ::= ident "(" ws args? ws ")" ";"
args ::= expr (ws "," ws expr)*
ifstmt ::= "if" ws "(" ws cond ws ")" ws block elseclause?
elseclause ::= ws "else" ws block
block ::= "{" ws (statement ws){0,3} "}"
ret ::= "return" ws expr ";"
cond ::= expr ws cmp ws expr
cmp ::= "==" | "!=" | "<" | ">" | "<=" | ">="
expr ::= term (ws addop ws term)*
addop ::= "+" | "-"
term ::= factor (ws mulop ws factor)*
mulop ::= "*" | "/" | "%"
factor ::= number | string | ident | boolean | nullv | "(" ws expr ws ")" | list | object
number ::= "-"? int frac?
int ::= "0" | [1-9] digit{0,8}
frac ::= "." digit{1,6}
digit ::= [0-9]
string ::= "\\"" char{0,40} "\\""
char ::= [^"\\\\\\n] | escape
escape ::= "\\\\" ["\\\\nt]
ident ::= letter (letter | digit | "_"){0,15}
letter ::= [a-zA-Z]
boolean ::= "true" | "false"
nullv ::= "null"
list ::= "[" ws (expr (ws "," ws expr){0,5})? ws "]"
object ::= "{" ws (pair (ws "," ws pair){0,5})? ws "}"
pair ::= string ws ":" ws expr
ws ::= [ \\t\\n]{0,4}
`;

/** EBNF_31 with every bounded repetition {m,n} written as * or + (same language up to the bounds). */
export const EBNF_31_UNBOUNDED = EBNF_31
  .replace('(ws statement){0,7}', '(ws statement)*')
  .replace('(statement ws){0,3}', '(statement ws)*')
  .replace('digit{0,8}', 'digit*')
  .replace('digit{1,6}', 'digit+')
  .replace('char{0,40}', 'char*')
  .replace('(letter | digit | "_"){0,15}', '(letter | digit | "_")*')
  .replace('(ws "," ws expr){0,5}', '(ws "," ws expr)*')
  .replace('(ws "," ws pair){0,5}', '(ws "," ws pair)*')
  .replace('[ \\t\\n]{0,4}', '[ \\t\\n]*');
