import { InvalidRequestError } from '../errors.js';
import type { ToolChoice, ToolFunction } from './types.js';

export type ToolRequestParam = 'tools' | 'tool_choice' | 'parallel_tool_calls';

/** A request's `tools`, `tool_choice` or `parallel_tool_calls` is unusable (HTTP 400). */
export class ToolRequestError extends InvalidRequestError {
  declare readonly param: ToolRequestParam;
  constructor(message: string, param: ToolRequestParam) {
    super(message, param);
  }
}

/** OpenAI's rule for function names. */
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/**
 * Checks a chat request's `tools`, `tool_choice` and `parallel_tool_calls` (OpenAI forms) and
 * reduces them to what the engine needs. An absent or empty `tools` means no tools. Defaults:
 * `tool_choice` is 'auto' with tools and 'none' without; `parallel_tool_calls` is true.
 */
export function validateTools(tools: unknown, toolChoice: unknown, parallel: unknown): { tools: ToolFunction[]; choice: ToolChoice; parallel: boolean } {
  const fns: ToolFunction[] = [];
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) throw new ToolRequestError(`tools must be an array of {"type": "function", "function": {...}} objects, got ${show(tools)}`, 'tools');
    const names = new Set<string>();
    tools.forEach((tool: unknown, i) => {
      if (!isObject(tool)) throw new ToolRequestError(`tools[${i}] must be an object, got ${show(tool)}`, 'tools');
      if (tool.type !== 'function') throw new ToolRequestError(`tools[${i}].type must be "function", got ${show(tool.type)}`, 'tools');
      const fn = tool.function;
      if (!isObject(fn)) throw new ToolRequestError(`tools[${i}].function must be an object with a "name", got ${show(fn)}`, 'tools');
      const { name, description, parameters } = fn;
      if (typeof name !== 'string') throw new ToolRequestError(`tools[${i}].function.name must be a string, got ${show(name)}`, 'tools');
      if (!NAME.test(name)) throw new ToolRequestError(`tools[${i}].function.name ${show(name)} must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes`, 'tools');
      if (names.has(name)) throw new ToolRequestError(`tools[${i}].function.name ${show(name)} repeats an earlier function's name`, 'tools');
      names.add(name);
      if (description !== undefined && description !== null && typeof description !== 'string') throw new ToolRequestError(`tools[${i}].function.description must be a string, got ${show(description)}`, 'tools');
      if (parameters !== undefined && parameters !== null && !isObject(parameters)) throw new ToolRequestError(`tools[${i}].function.parameters must be a JSON schema object, got ${show(parameters)}`, 'tools');
      const out: ToolFunction = { name };
      if (typeof description === 'string') out.description = description;
      if (isObject(parameters)) out.parameters = parameters;
      fns.push(out);
    });
  }

  let choice: ToolChoice;
  if (toolChoice === undefined || toolChoice === null) {
    choice = fns.length ? 'auto' : 'none';
  } else if (toolChoice === 'none' || toolChoice === 'auto' || toolChoice === 'required') {
    choice = toolChoice;
  } else if (isObject(toolChoice) && toolChoice.type === 'function' && isObject(toolChoice.function) && typeof toolChoice.function.name === 'string') {
    choice = { name: toolChoice.function.name };
  } else {
    throw new ToolRequestError(`tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}, got ${show(toolChoice)}`, 'tool_choice');
  }
  if (choice !== 'none' && choice !== 'auto' && fns.length === 0) {
    throw new ToolRequestError(`tool_choice ${show(toolChoice)} needs tools, but the request has none`, 'tool_choice');
  }
  if (typeof choice === 'object' && !fns.some((f) => f.name === (choice as { name: string }).name)) {
    throw new ToolRequestError(`tool_choice names function ${show(choice.name)}, which is not in tools (${fns.map((f) => f.name).join(', ')})`, 'tool_choice');
  }

  if (parallel !== undefined && parallel !== null && typeof parallel !== 'boolean') {
    throw new ToolRequestError(`parallel_tool_calls must be a boolean, got ${show(parallel)}`, 'parallel_tool_calls');
  }
  return { tools: fns, choice, parallel: parallel ?? true };
}
