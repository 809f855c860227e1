import { jsonSchemaEBNF } from '../structured/jsonSchemaGrammar.js';
import { parametersSchema } from './prompt.js';
import type { ToolCallFormat, ToolFunction } from './types.js';
import { ToolRequestError } from './validate.js';

/**
 * Grammar constraints for `tool_choice` 'required' or a named function: an xgrammar structural
 * tag under which the output is exactly one call (or, with parallel calls, one or more) in the
 * parser's format, each call's arguments conforming to its function's parameters schema, and
 * nothing after the last call.
 *
 * The calls are written the way the parsers and the fallback prompt expect, on one line:
 * - qwen25: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`, several separated by "\n";
 * - llama3: `{"name": "f", "parameters": {...}}`, several separated by "; ";
 * - mistral: `[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]`.
 *
 * The arguments JSON is compact, with Python json.dumps' separators (", " and ": ") and no other
 * whitespace, so a model cannot spend tokens on whitespace. The structural tag's own `json_schema`
 * format allows unbounded whitespace in xgrammar 0.1.27 (it takes no whitespace options), so each
 * function's schema is converted here with xgrammar's JSON-schema converter set to compact output,
 * and embedded as a `grammar` format. That converter needs xgrammar's WebAssembly module, hence
 * the function is async.
 *
 * The conversion (`structured/jsonSchemaGrammar.ts`) works around xgrammar 0.1.27's faults with
 * numeric ranges and string characters, and reports schema mistakes as a 400 on `tools`.
 */
export async function toolCallStructuralTag(
  parser: ToolCallFormat,
  tools: ToolFunction[],
  choice: 'required' | { name: string },
  parallel: boolean,
): Promise<Record<string, unknown>> {
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : tools;
  if (chosen.length === 0) {
    throw new ToolRequestError(typeof choice === 'object' ? `tool_choice names function "${choice.name}", which is not in tools` : 'tool_choice "required" needs at least one tool', 'tool_choice');
  }
  const argsKey = parser === 'llama3' ? 'parameters' : 'arguments';
  const tags: Record<string, unknown>[] = [];
  for (const fn of chosen) {
    const grammar = await argumentsGrammar(fn);
    const head = `{"name": ${JSON.stringify(fn.name)}, "${argsKey}": `;
    tags.push({
      type: 'tag',
      begin: parser === 'qwen25' ? `<tool_call>\n${head}` : head,
      content: { type: 'grammar', grammar },
      end: parser === 'qwen25' ? '}\n</tool_call>' : '}',
    });
  }
  const separator = parser === 'qwen25' ? '\n' : parser === 'llama3' ? '; ' : ', ';
  const calls: Record<string, unknown> = parallel
    ? { type: 'tags_with_separator', tags, separator, at_least_one: true }
    : tags.length === 1
      ? tags[0]!
      : { type: 'or', elements: tags };
  const format = parser === 'mistral' ? { type: 'tag', begin: '[TOOL_CALLS] [', content: calls, end: ']' } : calls;
  return { type: 'structural_tag', format };
}


/** Converted schemas by their JSON text (the conversion costs a pass through xgrammar's converter). */
const grammarCache = new Map<string, string>();
const CACHE_SIZE = 256;

/** The compact-JSON EBNF grammar of a function's arguments. */
async function argumentsGrammar(fn: ToolFunction): Promise<string> {
  let schema = parametersSchema(fn);
  if (!('type' in schema)) schema = { type: 'object', ...schema };
  const key = JSON.stringify([fn.name, schema]);
  const cached = grammarCache.get(key);
  if (cached !== undefined) return cached;
  const ebnf = await jsonSchemaEBNF(schema, { separators: [', ', ': '], strict: true, where: `tools: function "${fn.name}" parameters`, param: 'tools' });
  if (grammarCache.size >= CACHE_SIZE) grammarCache.delete(grammarCache.keys().next().value!);
  grammarCache.set(key, ebnf);
  return ebnf;
}
