import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidRequestError } from '../../src/errors.js';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';
import { hasToolTurns, templateRendersToolCalls, toolCallsText, toolHistoryAsText } from '../../src/tools/history.js';
import { toolCallParser } from '../../src/tools/registry.js';
import type { ToolCallFormat } from '../../src/tools/types.js';

const FORMATS: ToolCallFormat[] = ['qwen25', 'llama3', 'mistral'];

const call = (id: string, name: string, args: string) => ({ id, type: 'function', function: { name, arguments: args } });

test('calls written as text read back as the same calls, in every format', () => {
  const calls = [
    { name: 'get_weather', arguments: '{"city": "Paris", "days": [1, 2]}' },
    { name: 'get_time', arguments: '{}' },
  ];
  for (const format of FORMATS) {
    const text = toolCallsText(format, calls);
    assert.deepEqual(toolCallParser(format).parse(text), { content: null, calls }, `${format}: ${text}`);
  }
  assert.equal(toolCallsText('qwen25', calls.slice(1)), '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>');
  assert.equal(toolCallsText('llama3', calls), '{"name": "get_weather", "parameters": {"city": "Paris", "days": [1, 2]}}; {"name": "get_time", "parameters": {}}');
  assert.equal(toolCallsText('mistral', calls.slice(1)), '[TOOL_CALLS] [{"name": "get_time", "arguments": {}}]');
});

test('an assistant turn with calls: its content, then the calls in the format (arguments re-spaced)', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: null, tool_calls: [call('a', 'get_weather', '{"city":"Paris","unit":"c"}'), call('b', 'get_time', '')] },
    { role: 'assistant', content: 'Let me check.', tool_calls: [call('c', 'get_time', '{}')] },
  ];
  const qwen = toolHistoryAsText(messages, 'qwen25');
  assert.deepEqual(qwen[0], messages[0]);
  assert.deepEqual(qwen[1], {
    role: 'assistant',
    content: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
  });
  assert.equal(qwen[2]!.content, 'Let me check.\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>');
  assert.ok(!('tool_calls' in qwen[1]!), 'the template no longer sees the calls as structure');
  // llama3: after content the calls follow <|python_tag|>, where its parser reads them.
  const llama = toolHistoryAsText(messages, 'llama3');
  assert.equal(llama[2]!.content, 'Let me check.\n<|python_tag|>{"name": "get_time", "parameters": {}}');
  assert.deepEqual(toolCallParser('llama3').parse(llama[2]!.content as string).calls, [{ name: 'get_time', arguments: '{}' }]);
  assert.equal(toolHistoryAsText(messages, 'mistral')[1]!.content, '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}, {"name": "get_time", "arguments": {}}]');
});

test('tool results: each run of tool messages becomes one user message of <tool_response> blocks', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: null, tool_calls: [call('a', 'f', '{}'), call('b', 'g', '{}')] },
    { role: 'tool', tool_call_id: 'a', content: '21 C' },
    { role: 'tool', tool_call_id: 'b', content: [{ type: 'text', text: 'sun' }, { type: 'text', text: 'ny' }] },
    { role: 'assistant', content: 'Warm and sunny.' },
    { role: 'user', content: 'And tomorrow?' },
    { role: 'tool', tool_call_id: 'c', content: null },
  ];
  const out = toolHistoryAsText(messages, 'qwen25');
  assert.deepEqual(
    out.map((m) => m.role),
    ['user', 'assistant', 'user', 'assistant', 'user', 'user'],
  );
  assert.deepEqual(out[2], { role: 'user', content: '<tool_response>\n21 C\n</tool_response>\n<tool_response>\nsunny\n</tool_response>' });
  assert.deepEqual(out[3], messages[4]);
  assert.deepEqual(out[5], { role: 'user', content: '<tool_response>\n\n</tool_response>' });
});

test('a call without a function name is a 400 naming it', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [call('a', 'f', '{}'), { id: 'b', type: 'function', function: { arguments: '{}' } }] }];
  assert.throws(
    () => toolHistoryAsText(messages, 'qwen25'),
    (e: unknown) => e instanceof InvalidRequestError && e.param === 'messages[1].tool_calls[1]',
  );
});

test('which conversations have tool turns, and which templates render tool_calls', () => {
  assert.equal(hasToolTurns([{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', tool_calls: [] }]), false);
  assert.equal(hasToolTurns([{ role: 'tool', content: 'x' }]), true);
  assert.equal(hasToolTurns([{ role: 'assistant', content: null, tool_calls: [call('a', 'f', '{}')] }]), true);
  assert.equal(templateRendersToolCalls("{%- for tool_call in message.tool_calls %}{{ tool_call.name }}{% endfor %}"), true);
  assert.equal(templateRendersToolCalls("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}"), false);
});
