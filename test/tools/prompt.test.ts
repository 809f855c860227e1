import { test } from 'node:test';
import assert from 'node:assert/strict';
import { templateRendersTools, toolSystemPrompt } from '../../src/tools/prompt.js';
import { toolCallParser } from '../../src/tools/registry.js';
import type { ToolCallFormat, ToolFunction } from '../../src/tools/types.js';

const tools: ToolFunction[] = [
  { name: 'get_weather', description: 'Current weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1 } }, required: ['city', 'days'] } },
  { name: 'get_time' },
];

test('the fallback prompt lists the functions and the exact format, with an example the parser reads', () => {
  for (const format of ['qwen25', 'llama3', 'mistral'] as ToolCallFormat[]) {
    const text = toolSystemPrompt(format, tools, 'auto');
    for (const t of tools) assert.ok(text.includes(`"name": "${t.name}"`), t.name);
    assert.ok(text.includes('Current weather for a city'));
    assert.ok(text.includes('"properties": {"city": {"type": "string"}'), 'parameters as JSON');
    assert.ok(text.includes('"name": "get_time", "parameters": {"type": "object", "properties": {}}'), 'no parameters: an empty object schema');
    const example = text.split('For example:\n')[1]!.split('\n\n')[0]!;
    const parsed = toolCallParser(format).parse(example);
    assert.deepEqual(parsed.calls, [{ name: 'get_weather', arguments: '{"city": "...", "days": 1}' }], `${format}: ${example}`);
    assert.equal(parsed.content, null);
    assert.match(text, /when it helps/);
  }
  assert.match(toolSystemPrompt('qwen25', tools, 'auto'), /<tool_call>\n\{"name": <function-name>, "arguments": <arguments-json-object>\}\n<\/tool_call>/);
  assert.match(toolSystemPrompt('llama3', tools, 'auto'), /\{"name": <function-name>, "parameters": <arguments-json-object>\}[\s\S]*"; "/);
  assert.match(toolSystemPrompt('mistral', tools, 'auto'), /\[TOOL_CALLS\] followed by a JSON array/);
});

test('the fallback prompt says what tool_choice requires', () => {
  assert.match(toolSystemPrompt('qwen25', tools, 'required'), /You must call at least one of these functions/);
  const named = toolSystemPrompt('qwen25', tools, { name: 'get_time' });
  assert.match(named, /You must call the function "get_time"/);
  assert.ok(!named.includes('get_weather'), 'only the named function is offered');
  assert.match(toolSystemPrompt('qwen25', tools, 'none'), /Do not call any function/);
});

test('templateRendersTools: references to the tools variable, not mentions in text or strings', () => {
  const qwen = `{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- for tool in tools %}\n        {{- tool | tojson }}\n    {%- endfor %}\n{%- endif %}`;
  assert.equal(templateRendersTools(qwen), true);
  assert.equal(templateRendersTools('{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}'), true);
  assert.equal(templateRendersTools('{{ tools|tojson }}'), true);
  assert.equal(templateRendersTools('{%if tools is not none%}x{%endif%}'), true);
  assert.equal(templateRendersTools('{% for message in messages %}{{ message.content }}{% endfor %}'), false);
  assert.equal(templateRendersTools('You have tools available. {{ messages[0].content }}'), false, 'plain text outside blocks');
  assert.equal(templateRendersTools(`{{ '<tools>' + message.content }}{{ "tools" }}`), false, 'inside string literals');
  assert.equal(templateRendersTools('{{ message.tools }}{% if custom_tools %}{% endif %}'), false, 'attributes and other names');
  assert.equal(templateRendersTools('{# tools #}{{ x }}'), false, 'comments');
});
