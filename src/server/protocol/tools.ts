import { randomInt } from 'node:crypto';
import { InvalidRequestError } from '../../errors.js';
import type { Constraint } from '../../structured/constraint.js';
import type { ChatMessage, ContentPart } from '../../tokenizer/chatMessages.js';
import {
  hasToolTurns,
  templateRendersToolCalls,
  templateRendersTools,
  toolCallStructuralTag,
  toolHistoryAsText,
  toolSystemPrompt,
  validateTools,
  type ParsedToolCall,
  type ToolCallParser,
  type ToolCallStream,
  type ToolFunction,
} from '../../tools/index.js';
import type { ServerContext } from '../context.js';

/** The tool fields of a chat request, as sent. */
export interface ToolFields {
  tools?: unknown;
  tool_choice?: unknown;
  parallel_tool_calls?: unknown;
}

/** What a chat request's tools change about its prompt, constraint and output. */
export interface ChatToolPlan {
  /** The conversation to render (tool turns as text, the fallback tool prompt, where needed). */
  messages: ChatMessage[];
  /** The template's `tools` variable, when the template renders tools itself. */
  templateTools: unknown[] | undefined;
  /** The output constraint: the request's own, or the forced call's structural tag. */
  constraint: Constraint | null;
  /** Reads calls out of the output; null when the request offers no tools (or tool_choice is none). */
  parser: ToolCallParser | null;
}

/** The constraint fields whose constraint a forced call cannot be combined with. */
const CONSTRAINT_FIELDS = ['response_format', 'regex', 'ebnf', 'json_schema'] as const;

/** OpenAI's form of a function, for a template's `tools` variable. */
function openAiTool(t: ToolFunction): Record<string, unknown> {
  return { type: 'function', function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters ?? { type: 'object', properties: {} } } };
}

/** The tool prompt first in the system message (a new one if the conversation has none). */
function withSystemPrompt(messages: ChatMessage[], prompt: string): ChatMessage[] {
  const first = messages[0];
  if (first?.role !== 'system') return [{ role: 'system', content: prompt }, ...messages];
  const c = first.content;
  const content: string | ContentPart[] =
    c === undefined || c === null || c === '' ? prompt : typeof c === 'string' ? `${prompt}\n\n${c}` : [{ type: 'text', text: `${prompt}\n\n` }, ...c];
  return [{ ...first, content }, ...messages.slice(1)];
}

/**
 * Checks a chat request's tools and works out how they are rendered and enforced:
 * - `tools` reach the template when it renders them (it uses the `tools` variable); otherwise the
 *   fallback system prompt in the server's call format offers them;
 * - earlier tool turns stay structured for a template that renders `tool_calls`, and become text
 *   otherwise (whether or not this request offers tools);
 * - `tool_choice` "required" or a named function constrains the output to calls (a structural
 *   tag), which cannot be combined with another output constraint;
 * - "none" (or no tools) renders no tools and reads no calls.
 */
export async function planChatTools(ctx: ServerContext, body: ToolFields & Record<string, unknown>, messages: ChatMessage[], constraint: Constraint | null): Promise<ChatToolPlan> {
  const { tools, choice, parallel } = validateTools(body.tools, body.tool_choice, body.parallel_tool_calls);
  const active = tools.length > 0 && choice !== 'none';
  const forced = active && (choice === 'required' || typeof choice === 'object');
  if (!active && !hasToolTurns(messages)) return { messages, templateTools: undefined, constraint, parser: null };

  if (forced && constraint) {
    const field = CONSTRAINT_FIELDS.find((k) => body[k] !== undefined && body[k] !== null) ?? 'response_format';
    throw new InvalidRequestError(
      `tool_choice ${JSON.stringify(body.tool_choice)} forces a tool call, whose output is constrained to the call format; it cannot be combined with ${field}: drop one of tool_choice and ${field}`,
      field,
    );
  }

  const parser = ctx.toolCallParser;
  const template = ctx.engine.chatTemplate;
  const toolTemplate = active ? template.templateText({ tools: true }) : null;
  const nativeTools = toolTemplate !== null && templateRendersTools(toolTemplate);
  const used = nativeTools ? toolTemplate : template.templateText();
  let out = messages;
  if (hasToolTurns(out) && !(used !== null && templateRendersToolCalls(used))) out = toolHistoryAsText(out, parser.name);
  if (active && !nativeTools) out = withSystemPrompt(out, toolSystemPrompt(parser.name, tools, choice));

  let toolConstraint = constraint;
  if (forced) {
    const tag = await toolCallStructuralTag(parser.name, tools, choice as 'required' | { name: string }, parallel);
    toolConstraint = { kind: 'structural_tag', tag: JSON.stringify(tag) };
  }
  return { messages: out, templateTools: nativeTools ? tools.map(openAiTool) : undefined, constraint: toolConstraint, parser: active ? parser : null };
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A tool call id as OpenAI's look: `call_` and 24 letters and digits. */
export function toolCallId(): string {
  let s = 'call_';
  for (let i = 0; i < 24; i++) s += ID_CHARS[randomInt(ID_CHARS.length)];
  return s;
}

export interface ToolCallJson {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A choice's finish reason: "tool_calls" when it made calls and ended normally. */
export function toolFinishReason(finish: string, madeCalls: boolean): string {
  return madeCalls && finish === 'stop' ? 'tool_calls' : finish;
}

/**
 * A whole output as a chat message's content and tool calls: with a parser and calls found, the
 * text around them (null if none) and the calls; otherwise the text as it is and no calls.
 */
export function chatMessageParts(text: string, parser: ToolCallParser | null): { content: string | null; toolCalls: ToolCallJson[] | null } {
  if (!parser) return { content: text, toolCalls: null };
  const { content, calls } = parser.parse(text);
  if (calls.length === 0) return { content: text, toolCalls: null };
  return { content, toolCalls: calls.map(callJson) };
}

function callJson(c: ParsedToolCall): ToolCallJson {
  return { id: toolCallId(), type: 'function', function: { name: c.name, arguments: c.arguments } };
}

/** One streamed choice's deltas, from its output text through the parser. */
export class ToolDeltaStream {
  private readonly stream: ToolCallStream;
  private calls = 0;

  constructor(parser: ToolCallParser) {
    this.stream = parser.stream();
  }

  /** Whether a call was announced. */
  get madeCalls(): boolean {
    return this.calls > 0;
  }

  /** The deltas for the next piece of text. */
  push(text: string): Record<string, unknown>[] {
    return text ? this.deltas(this.stream.push(text)) : [];
  }

  /** The deltas held back until the end. */
  end(): Record<string, unknown>[] {
    return this.deltas(this.stream.end());
  }

  private deltas(events: ReturnType<ToolCallStream['push']>): Record<string, unknown>[] {
    return events.map((e) => {
      switch (e.type) {
        case 'content':
          return { content: e.text };
        case 'call':
          this.calls++;
          return { tool_calls: [{ index: e.index, id: toolCallId(), type: 'function', function: { name: e.name, arguments: '' } }] };
        case 'arguments':
          return { tool_calls: [{ index: e.index, function: { arguments: e.text } }] };
      }
    });
  }
}
