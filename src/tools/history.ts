import { InvalidRequestError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../tokenizer/chatMessages.js';
import { spacedJson } from './prompt.js';
import type { ToolCallFormat } from './types.js';

/**
 * Earlier tool turns of a conversation, for a chat template that does not know them (one that
 * never mentions `tool_calls`): the assistant's calls are written back as the text the model
 * writes for them in the parser's format, and the results of calls become a user message, as
 * Qwen2.5's own template does.
 */

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether a chat template renders assistant `tool_calls` (and, with them, `tool` messages) itself. */
export function templateRendersToolCalls(templateSource: string): boolean {
  return /\btool_calls\b/.test(templateSource);
}

/** Whether a conversation has tool turns: assistant messages with calls or `tool` messages. */
export function hasToolTurns(messages: readonly ChatMessage[]): boolean {
  return messages.some((m) => m?.role === 'tool' || (Array.isArray(m?.tool_calls) && m.tool_calls.length > 0));
}

/** Arguments as the model would have written them: compact JSON with ", " and ": " (none: `{}`; text that is not JSON stays as it is). */
function argumentsText(args: unknown, where: string): string {
  if (args === undefined || args === null || (typeof args === 'string' && args.trim() === '')) return '{}';
  if (typeof args === 'string') {
    try {
      return spacedJson(JSON.parse(args));
    } catch {
      return args;
    }
  }
  if (isObject(args)) return spacedJson(args);
  throw new InvalidRequestError(`${where}.function.arguments must be a JSON string`, `${where}.function.arguments`);
}

/** The text of calls in a format, as the constraint and the parsers have it. */
export function toolCallsText(format: ToolCallFormat, calls: ReadonlyArray<{ name: string; arguments: string }>): string {
  const one = (c: { name: string; arguments: string }) => `{"name": ${JSON.stringify(c.name)}, "${format === 'llama3' ? 'parameters' : 'arguments'}": ${c.arguments}}`;
  switch (format) {
    case 'qwen25':
      return calls.map((c) => `<tool_call>\n${one(c)}\n</tool_call>`).join('\n');
    case 'llama3':
      return calls.map(one).join('; ');
    case 'mistral':
      return `[TOOL_CALLS] [${calls.map(one).join(', ')}]`;
  }
}

function callsOf(m: ChatMessage, mi: number): Array<{ name: string; arguments: string }> {
  return (m.tool_calls ?? []).map((c, ci) => {
    const where = `messages[${mi}].tool_calls[${ci}]`;
    const fn = isObject(c) ? c.function : undefined;
    if (!isObject(fn) || typeof fn.name !== 'string' || !fn.name) {
      throw new InvalidRequestError(`${where} must be {"type": "function", "function": {"name": ..., "arguments": ...}}`, where);
    }
    return { name: fn.name, arguments: argumentsText(fn.arguments, where) };
  });
}

function contentParts(content: ChatMessage['content']): ContentPart[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  return content;
}

/** Text parts merged; other parts kept where they are. A message of text alone becomes a string. */
function joinParts(parts: ContentPart[]): string | ContentPart[] {
  const out: ContentPart[] = [];
  for (const p of parts) {
    const last = out[out.length - 1];
    if (p.type === 'text' && last?.type === 'text') out[out.length - 1] = { type: 'text', text: last.text + p.text };
    else out.push(p);
  }
  if (out.every((p) => p.type === 'text')) return out.map((p) => (p as { text: string }).text).join('');
  return out;
}

/**
 * The conversation with its tool turns as plain text: an assistant message's calls follow its
 * content (on a new line) in the parser's format (llama3: after `<|python_tag|>` when there is
 * content, so the calls still read as calls); each run of consecutive `tool` messages becomes one
 * user message holding every result within `<tool_response>\n...\n</tool_response>`, one per line.
 */
export function toolHistoryAsText(messages: readonly ChatMessage[], format: ToolCallFormat): ChatMessage[] {
  const out: ChatMessage[] = [];
  let results: ContentPart[] | null = null;
  messages.forEach((m, mi) => {
    if (m?.role === 'tool') {
      const parts: ContentPart[] = [{ type: 'text', text: `${results ? '\n' : ''}<tool_response>\n` }, ...contentParts(m.content), { type: 'text', text: '\n</tool_response>' }];
      if (results) {
        results.push(...parts);
      } else {
        results = parts;
        out.push({ role: 'user', content: '' });
      }
      out[out.length - 1] = { role: 'user', content: joinParts(results) };
      return;
    }
    results = null;
    if (m?.role !== 'assistant' || !Array.isArray(m.tool_calls) || m.tool_calls.length === 0) {
      out.push(m);
      return;
    }
    const calls = callsOf(m, mi);
    const { tool_calls: _calls, ...rest } = m;
    const before = contentParts(m.content);
    const hasText = before.some((p) => p.type !== 'text' || p.text.trim() !== '');
    const sep = hasText ? (format === 'llama3' ? '\n<|python_tag|>' : '\n') : '';
    const parts = hasText ? [...before, { type: 'text' as const, text: sep + toolCallsText(format, calls) }] : [{ type: 'text' as const, text: toolCallsText(format, calls) }];
    out.push({ ...rest, content: joinParts(parts) });
  });
  return out;
}
