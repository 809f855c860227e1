import type { ToolCallFormat, ToolChoice, ToolFunction } from './types.js';

/** The JSON schema a function's arguments follow (no parameters: an empty object). */
export function parametersSchema(fn: ToolFunction): Record<string, unknown> {
  return fn.parameters ?? { type: 'object', properties: {} };
}

/** A plausible arguments object for the example call: the required properties (or the first one) with placeholder values of their type. */
function exampleArguments(schema: Record<string, unknown>): Record<string, unknown> {
  const props = (typeof schema.properties === 'object' && schema.properties !== null ? schema.properties : {}) as Record<string, Record<string, unknown>>;
  const required = Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === 'string' && k in props) : [];
  const keys = required.length ? required : Object.keys(props).slice(0, 1);
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = exampleValue(props[k] ?? {});
  return out;
}

function exampleValue(s: Record<string, unknown>): unknown {
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if ('const' in s) return s.const;
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'integer':
      return typeof s.minimum === 'number' ? Math.ceil(s.minimum) : 1;
    case 'number':
      return typeof s.minimum === 'number' ? s.minimum : 1.5;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return exampleArguments(s);
    case 'null':
      return null;
    default:
      return '...';
  }
}

/** JSON as Python's json.dumps writes it (", " and ": "), the style the constraint enforces and chat templates render. */
export function spacedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(spacedJson).join(', ')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}: ${spacedJson(x)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function callText(format: ToolCallFormat, name: string, args: string): string {
  const n = JSON.stringify(name);
  if (format === 'llama3') return `{"name": ${n}, "parameters": ${args}}`;
  if (format === 'mistral') return `{"name": ${n}, "arguments": ${args}}`;
  return `<tool_call>\n{"name": ${n}, "arguments": ${args}}\n</tool_call>`;
}

function formatRules(format: ToolCallFormat): string {
  switch (format) {
    case 'qwen25':
      return [
        'To call a function, write a JSON object with the function name and its arguments within <tool_call></tool_call> tags:',
        '<tool_call>\n{"name": <function-name>, "arguments": <arguments-json-object>}\n</tool_call>',
        'To call several functions, write one such block per call, one after another on separate lines.',
      ].join('\n');
    case 'llama3':
      return [
        'To call a function, reply with nothing but a JSON object of the form',
        '{"name": <function-name>, "parameters": <arguments-json-object>}',
        'To call several functions, separate their JSON objects with "; ". Do not use variables.',
      ].join('\n');
    case 'mistral':
      return [
        'To call functions, write [TOOL_CALLS] followed by a JSON array of calls, each of the form',
        '{"name": <function-name>, "arguments": <arguments-json-object>}',
        'To call several functions, put all the calls in that one array.',
      ].join('\n');
  }
}

function choiceRule(choice: ToolChoice): string {
  if (choice === 'none') return 'Do not call any function now: answer the user directly.';
  if (choice === 'auto') return 'Call a function when it helps to answer the user; otherwise answer directly without a call.';
  if (choice === 'required') return 'You must call at least one of these functions: reply with the call(s) only.';
  return `You must call the function ${JSON.stringify(choice.name)}: reply with that call only.`;
}

/**
 * A system-message text offering the functions to a model whose chat template does not render
 * `tools`: each function (name, description, parameters as JSON), the exact output format the
 * parser reads, with an example, and what `choice` demands.
 */
export function toolSystemPrompt(parser: ToolCallFormat, tools: ToolFunction[], choice: ToolChoice): string {
  const listed = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : tools;
  const fns = listed.map((t) => spacedJson({ type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: parametersSchema(t) } }));
  const first = listed[0];
  const example = first ? callText(parser, first.name, spacedJson(exampleArguments(parametersSchema(first)))) : null;
  const parts = [
    '# Tools',
    'You can call functions to help answer the user. The functions are described by these JSON signatures within <tools></tools> tags:',
    `<tools>\n${fns.join('\n')}\n</tools>`,
    formatRules(parser),
  ];
  if (example) parts.push(`For example:\n${parser === 'mistral' ? `[TOOL_CALLS] [${example}]` : example}`);
  parts.push('Arguments must be a JSON object following the function\'s parameters schema. The results of calls come back in later messages.');
  parts.push(choiceRule(choice));
  return parts.join('\n\n');
}

/**
 * Whether a Jinja chat template uses the `tools` variable (e.g. Qwen2.5's `{%- if tools %}`), so
 * that passing `tools` to it renders them. Looks for the word `tools` in the template's
 * statements and expressions, outside string literals and not as an attribute (`x.tools`).
 */
export function templateRendersTools(templateSource: string): boolean {
  const blocks = templateSource.replace(/\{#[\s\S]*?#\}/g, '').match(/\{%[\s\S]*?%\}|\{\{[\s\S]*?\}\}/g) ?? [];
  for (const block of blocks) {
    const code = block.replace(/'(?:[^'\\]|\\[\s\S])*'|"(?:[^"\\]|\\[\s\S])*"/g, '""');
    if (/(^|[^.\w])tools\b/.test(code)) return true;
  }
  return false;
}
