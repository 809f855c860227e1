import type { ContentFormat } from './chatMessages.js';

/**
 * Detects whether a chat template wants message content as a list of parts ('openai') or as
 * a string, the way vLLM does (--chat-template-content-format auto): the template is 'openai'
 * when some `for` loop iterates over a message's content. We walk @huggingface/jinja's AST.
 */

interface Node {
  type: string;
  [key: string]: unknown;
}

function isNode(v: unknown): v is Node {
  return !!v && typeof v === 'object' && typeof (v as { type?: unknown }).type === 'string';
}

function* walk(v: unknown): Generator<Node> {
  if (Array.isArray(v)) {
    for (const x of v) yield* walk(x);
  } else if (v && typeof v === 'object') {
    if (isNode(v)) yield v;
    for (const x of Object.values(v)) if (x && typeof x === 'object') yield* walk(x);
  }
}

/** Strips filters (`| reverse`), inline `if` selections and slices: `x[1:] | reverse` -> `x`. */
function unwrap(e: unknown): unknown {
  let cur = e;
  for (;;) {
    if (!isNode(cur)) return cur;
    if (cur.type === 'FilterExpression') cur = cur.operand;
    else if (cur.type === 'SelectExpression') cur = cur.lhs;
    else if (cur.type === 'MemberExpression' && isNode(cur.property) && cur.property.type === 'SliceExpression') {
      cur = cur.object;
    } else return cur;
  }
}

function identifier(e: unknown): string | null {
  return isNode(e) && e.type === 'Identifier' && typeof e.value === 'string' ? e.value : null;
}

/** `v['key']` or `v.key` with v one of `names`. */
function isMemberOf(e: unknown, names: ReadonlySet<string>, key: string): boolean {
  if (!isNode(e) || e.type !== 'MemberExpression') return false;
  const obj = identifier(e.object);
  if (obj === null || !names.has(obj)) return false;
  const p = e.property;
  if (!isNode(p)) return false;
  return e.computed ? p.type === 'StringLiteral' && p.value === key : identifier(p) === key;
}

/** `messages[i]` (an index, not a slice). */
function isMessagesItem(e: unknown): boolean {
  return isNode(e) && e.type === 'MemberExpression' && identifier(e.object) === 'messages' &&
    e.computed === true && isNode(e.property) && e.property.type !== 'SliceExpression';
}

export function detectContentFormat(parsed: unknown): ContentFormat {
  const nodes = [...walk(parsed)];
  // Names bound to one message: loop variables over `messages`, `set x = messages[i]`, usual names.
  const msgVars = new Set(['message', 'msg', 'm']);
  for (const n of nodes) {
    if (n.type === 'For' && identifier(unwrap(n.iterable)) === 'messages') {
      const v = identifier(n.loopvar);
      if (v) msgVars.add(v);
    } else if (n.type === 'Set' && isMessagesItem(unwrap(n.value))) {
      const v = identifier(n.assignee);
      if (v) msgVars.add(v);
    }
  }
  // Names bound to a message's content: `set content = message['content']`.
  const contentVars = new Set<string>();
  for (const n of nodes) {
    if (n.type === 'Set' && isMemberOf(unwrap(n.value), msgVars, 'content')) {
      const v = identifier(n.assignee);
      if (v) contentVars.add(v);
    }
  }
  for (const n of nodes) {
    if (n.type !== 'For') continue;
    const it = unwrap(n.iterable);
    const name = identifier(it);
    if (isMemberOf(it, msgVars, 'content') || (name !== null && contentVars.has(name))) return 'openai';
  }
  return 'string';
}
