import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOOL_CALL_PARSERS, defaultToolCallParser, toolCallParser } from '../../src/tools/registry.js';
import type { ToolCallFormat, ToolStreamEvent } from '../../src/tools/types.js';
import { chunkings, collect, streamEvents } from './helpers.js';

type Call = { name: string; args: string };

/** The text a model of each format writes for these calls, after `before`. */
function render(format: ToolCallFormat, calls: Call[], before = ''): string {
  if (format === 'qwen25') return before + calls.map((c) => `<tool_call>\n{"name": ${JSON.stringify(c.name)}, "arguments": ${c.args}}\n</tool_call>`).join('\n');
  if (format === 'llama3') return before + calls.map((c) => `{"name": ${JSON.stringify(c.name)}, "parameters": ${c.args}}`).join('; ');
  return before + `[TOOL_CALLS] [${calls.map((c) => `{"name": ${JSON.stringify(c.name)}, "arguments": ${c.args}}`).join(', ')}]`;
}

const NASTY_ARGS = [
  '{}',
  '{"city": "Paris", "days": 3}',
  JSON.stringify({ q: 'a}b{c', tag: '</tool_call>\n<tool_call>\n[TOOL_CALLS] [<|python_tag|>{"name": "x"}', nested: { a: [1, { b: null, c: [true, false] }], d: {} }, n: -1.5e-3 }),
  JSON.stringify({ text: 'héllo 🌍 日本語 — "quoted" \\ backslash\nnewline\ttab', emoji: '🧪🧬' }),
  '{"esc": "\\u00e9\\u4e2d\\ud83c\\udf0d\\/\\b\\f\\r", "big": 12345678901234567890, "e": 1E+2, "z": 0, "neg": -0.0}',
  '{ "spaced" :  [ 1 , 2 ] ,\n  "obj" : { } }',
];

const FORMATS = TOOL_CALL_PARSERS as readonly ToolCallFormat[];

test('registry: names, lookup and the error for an unknown parser', () => {
  assert.deepEqual([...TOOL_CALL_PARSERS], ['qwen25', 'llama3', 'mistral']);
  for (const name of TOOL_CALL_PARSERS) assert.equal(toolCallParser(name).name, name);
  assert.throws(() => toolCallParser('hermes'), (e: Error) => /hermes/.test(e.message) && /qwen25, llama3, mistral/.test(e.message));
});

test('registry: default parser per model family', () => {
  assert.equal(defaultToolCallParser('Qwen2VLForConditionalGeneration', 'qwen2_vl'), 'qwen25');
  assert.equal(defaultToolCallParser('Qwen2_5_VLForConditionalGeneration', 'qwen2_5_vl', 'qwen2_5_vl_text'), 'qwen25');
  assert.equal(defaultToolCallParser('LlavaOnevisionForConditionalGeneration', 'llava_onevision', 'qwen2'), 'qwen25');
  assert.equal(defaultToolCallParser('MiniCPMV', 'minicpmv', 'qwen2'), 'qwen25');
  assert.equal(defaultToolCallParser('MiniCPMV', 'minicpmv'), 'qwen25');
  assert.equal(defaultToolCallParser('MllamaForConditionalGeneration', 'mllama', 'mllama_text_model'), 'llama3');
  assert.equal(defaultToolCallParser('LlavaForConditionalGeneration', 'llava', 'llama'), 'llama3');
  assert.equal(defaultToolCallParser('LlavaNextForConditionalGeneration', 'llava_next', 'llama'), 'llama3');
  assert.equal(defaultToolCallParser('LlavaNextForConditionalGeneration', 'llava_next', 'mistral'), 'mistral');
  assert.equal(defaultToolCallParser('Gemma3ForConditionalGeneration', 'gemma3', 'gemma3_text'), 'qwen25');
  assert.equal(defaultToolCallParser('DeepseekVLV2ForCausalLM', 'deepseek_vl_v2'), 'qwen25');
  assert.equal(defaultToolCallParser('SomethingNew'), 'qwen25');
});

test('plain content: no calls, content as written (trimmed), null when only whitespace', () => {
  const texts: Record<ToolCallFormat, string[]> = {
    qwen25: ['Hello, world.', 'a <tool_ b < c <tool_call d', 'Use {"name": "x", "arguments": {}} like this', 'ends with <tool_cal'],
    llama3: ['Hello, world.', 'The set {1, 2} has {"name": "f"} in it', 'a <|python b <| c', 'ends with <|python_ta'],
    mistral: ['Hello, world.', 'an [array] and [TOOL_ and [TOOL_CALL]', '[{"name": "f", "arguments": {}}] without marker', 'ends with [TOOL_CALLS'],
  };
  for (const format of FORMATS) {
    const p = toolCallParser(format);
    for (const text of texts[format]) {
      assert.deepEqual(p.parse(text), { content: text, calls: [] }, `${format}: ${text}`);
      assert.deepEqual(p.parse(`\n  ${text} \n`), { content: text, calls: [] });
      for (const chunks of chunkings(text, 1)) assert.deepEqual(collect(streamEvents(p, chunks)), { content: text, calls: [] }, `${format} stream: ${text}`);
    }
    assert.deepEqual(p.parse(''), { content: null, calls: [] });
    assert.deepEqual(p.parse(' \n\t '), { content: null, calls: [] });
    assert.deepEqual(streamEvents(p, [' ', '\n', '\t']), []);
  }
});

test('one call, several calls and content before them, with awkward arguments', () => {
  for (const format of FORMATS) {
    const p = toolCallParser(format);
    for (const args of NASTY_ARGS) {
      assert.deepEqual(p.parse(render(format, [{ name: 'get_weather', args }])), { content: null, calls: [{ name: 'get_weather', arguments: args.trim() }] }, `${format} ${args}`);
      JSON.parse(args);
    }
    const calls = NASTY_ARGS.map((args, i) => ({ name: `fn_${i}`, args }));
    const several = p.parse(render(format, calls));
    assert.deepEqual(several.calls, calls.map((c) => ({ name: c.name, arguments: c.args })), format);
    assert.equal(several.content, null);
    const before = format === 'llama3' ? 'Let me look that up. <|python_tag|>' : 'Let me look that up.\n\n';
    const withText = p.parse(render(format, calls.slice(1, 3), before));
    assert.equal(withText.content, 'Let me look that up.');
    assert.deepEqual(withText.calls.map((c) => c.name), ['fn_1', 'fn_2']);
  }
});

test('format details: key order, missing arguments, "type", separators, closing syntax', () => {
  const q = toolCallParser('qwen25');
  assert.deepEqual(q.parse('<tool_call>{"arguments": {"a": 1}, "name": "f"}</tool_call>'), { content: null, calls: [{ name: 'f', arguments: '{"a": 1}' }] });
  assert.deepEqual(q.parse('<tool_call>\n{"name": "f"}\n</tool_call>'), { content: null, calls: [{ name: 'f', arguments: '{}' }] });
  // The closing tag may be cut off; text after a call is content.
  assert.deepEqual(q.parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_'), { content: null, calls: [{ name: 'f', arguments: '{}' }] });
  assert.deepEqual(q.parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\nDone.'), { content: 'Done.', calls: [{ name: 'f', arguments: '{}' }] });
  assert.deepEqual(q.parse('A\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\nB'), { content: 'A\n\nB', calls: [{ name: 'f', arguments: '{}' }] });

  const l = toolCallParser('llama3');
  assert.deepEqual(l.parse('{"type": "function", "name": "f", "parameters": {"x": [1]}}'), { content: null, calls: [{ name: 'f', arguments: '{"x": [1]}' }] });
  assert.deepEqual(l.parse('<|python_tag|>{"name": "f", "arguments": {"x": 1}}'), { content: null, calls: [{ name: 'f', arguments: '{"x": 1}' }] });
  assert.deepEqual(l.parse('{"name": "f", "parameters": {}};{"name": "g", "parameters": {}} ; <|python_tag|>{"name": "h", "parameters": {}}\n{"name": "i"}'), {
    content: null,
    calls: ['f', 'g', 'h', 'i'].map((name) => ({ name, arguments: '{}' })),
  });
  // Only a JSON object at the very start (or after <|python_tag|>) is a call.
  assert.deepEqual(l.parse('Sure: {"name": "f", "parameters": {}}'), { content: 'Sure: {"name": "f", "parameters": {}}', calls: [] });
  assert.deepEqual(l.parse('{"name": "f", "parameters": {}}; and then some'), { content: '; and then some', calls: [{ name: 'f', arguments: '{}' }] });
  assert.deepEqual(l.parse('{"name": "f", "parameters": {}, "arguments": {}}').calls, [], 'both argument keys: malformed');

  const m = toolCallParser('mistral');
  assert.deepEqual(m.parse('[TOOL_CALLS][{"name":"f","arguments":{"a":"]"}},{"name":"g","arguments":{}}]'), {
    content: null,
    calls: [
      { name: 'f', arguments: '{"a":"]"}' },
      { name: 'g', arguments: '{}' },
    ],
  });
  assert.deepEqual(m.parse('[TOOL_CALLS] [{"name": "f", "arguments": {}}] Anything else?'), { content: 'Anything else?', calls: [{ name: 'f', arguments: '{}' }] });
  // A missing "]" at the end leaves complete calls standing.
  assert.deepEqual(m.parse('[TOOL_CALLS] [{"name": "f", "arguments": {}}, '), { content: null, calls: [{ name: 'f', arguments: '{}' }] });
});

/** Texts that parse without malformed calls: streaming must rebuild exactly what parse returns. */
function wellFormed(format: ToolCallFormat): string[] {
  const calls = NASTY_ARGS.map((args, i) => ({ name: `f${i}`, args }));
  const before = format === 'llama3' ? 'Checking 🌍 <|python_tag|>' : 'Checking 🌍 {x} <b> [y]\n';
  return [
    'plain text ✓ with <, [ and { and <tool and [TOOL',
    render(format, calls.slice(0, 1)),
    render(format, calls.slice(2, 4)),
    render(format, calls, before),
    render(format, calls.slice(3, 5), '  \n'),
    render(format, calls.slice(1, 2)) + (format === 'llama3' ? ' Anything else? {}' : '\nAnything else? <tool_call> [TOOL_CALLS] {}'),
  ];
}

test('streaming at every character boundary and random chunkings rebuilds what parse returns', () => {
  let n = 0;
  for (const format of FORMATS) {
    const p = toolCallParser(format);
    for (const [k, text] of wellFormed(format).entries()) {
      const parsed = p.parse(text);
      for (const call of parsed.calls) assert.equal(typeof JSON.parse(call.arguments), 'object');
      for (const chunks of chunkings(text, 100 * k + 7)) {
        const events = streamEvents(p, chunks);
        assert.deepEqual(collect(events), parsed, `${format} text ${k} in ${chunks.length} chunks`);
        assert.ok(events.every((e) => e.type === 'call' || e.text !== ''), 'no empty fragments');
        n++;
      }
    }
  }
  assert.ok(n > 200);
  // Within one push, consecutive pieces of the same kind come as one event.
  const events = toolCallParser('qwen25').stream().push(wellFormed('qwen25')[3]!);
  for (let i = 1; i < events.length; i++) {
    const [a, b] = [events[i - 1]!, events[i]!];
    assert.ok(!(a.type === 'content' && b.type === 'content') && !(a.type === 'arguments' && b.type === 'arguments'), JSON.stringify([a, b]));
  }
  assert.deepEqual(events.map((e) => e.type).slice(0, 3), ['content', 'call', 'arguments']);
});

test('streaming emits content early, a call once its name is complete, then argument fragments', () => {
  const q = toolCallParser('qwen25').stream();
  assert.deepEqual(q.push('Hello wor'), [{ type: 'content', text: 'Hello wor' }]);
  assert.deepEqual(q.push('ld <tool_'), [{ type: 'content', text: 'ld' }], 'the possible marker prefix (and trailing space) is held back');
  assert.deepEqual(q.push('x'), [{ type: 'content', text: ' <tool_x' }], 'not a marker after all');
  assert.deepEqual(q.push(' <tool_call>\n{"name": "get_w'), []);
  assert.deepEqual(q.push('eather", "argum'), [{ type: 'call', index: 0, name: 'get_weather' }]);
  assert.deepEqual(q.push('ents": {"ci'), [{ type: 'arguments', index: 0, text: '{"ci' }]);
  assert.deepEqual(q.push('ty": "Paris"}}'), [{ type: 'arguments', index: 0, text: 'ty": "Paris"}' }]);
  assert.deepEqual(q.push('\n</tool_call>\n<tool_call>\n{"name": "b"}'), [
    { type: 'call', index: 1, name: 'b' },
    { type: 'arguments', index: 1, text: '{}' },
  ]);
  assert.deepEqual(q.end(), []);

  const m = toolCallParser('mistral').stream();
  assert.deepEqual(m.push('[TOOL_CALLS] [{"name": "f"'), [{ type: 'call', index: 0, name: 'f' }]);
  assert.deepEqual(m.push(', "arguments": {"a": [1, 2'), [{ type: 'arguments', index: 0, text: '{"a": [1, 2' }]);
  assert.deepEqual(m.push(']}}]'), [{ type: 'arguments', index: 0, text: ']}' }]);

  // llama3: a bare JSON object is announced as a call once its arguments begin, since plain JSON
  // answers have "name" keys too.
  const l = toolCallParser('llama3').stream();
  assert.deepEqual(l.push('{"name": "f", '), []);
  assert.deepEqual(l.push('"parameters": {"x"'), [
    { type: 'call', index: 0, name: 'f' },
    { type: 'arguments', index: 0, text: '{"x"' },
  ]);
  const l2 = toolCallParser('llama3').stream();
  assert.deepEqual(l2.push('{"name": "Ada", '), []);
  assert.deepEqual(l2.push('"age"'), [{ type: 'content', text: '{"name": "Ada", "age"' }]);
  assert.deepEqual(l2.push(': 36}'), [{ type: 'content', text: ': 36}' }]);
  assert.deepEqual(l2.end(), []);

  // Pushed a character at a time, the arguments arrive in many fragments.
  const events = streamEvents(toolCallParser('qwen25'), Array.from(render('qwen25', [{ name: 'f', args: NASTY_ARGS[2]! }])));
  assert.ok(events.filter((e) => e.type === 'arguments').length > 50);
  assert.throws(() => {
    const s = toolCallParser('qwen25').stream();
    s.end();
    s.push('x');
  });
});

/** Malformed outputs: what parse says, and what the stream sends. */
test('malformed and cut-off calls: parse keeps them as content; the stream never finishes them', () => {
  const cases: { format: ToolCallFormat; text: string; content: string | null; calls?: string[]; streamCalls?: string[]; streamContent?: string | null }[] = [
    // Failures before the name is complete: the stream sends the same content as parse.
    { format: 'qwen25', text: 'Hi <tool_call>', content: 'Hi <tool_call>' },
    { format: 'qwen25', text: 'Hi <tool_call>\n{"na', content: 'Hi <tool_call>\n{"na' },
    { format: 'qwen25', text: '<tool_call>\nnot json\n</tool_call>', content: '<tool_call>\nnot json\n</tool_call>' },
    { format: 'qwen25', text: '<tool_call>\n{"name": 5, "arguments": {}}\n</tool_call>', content: '<tool_call>\n{"name": 5, "arguments": {}}\n</tool_call>' },
    { format: 'qwen25', text: '<tool_call>\n{"name": "", "arguments": {}}\n</tool_call>', content: '<tool_call>\n{"name": "", "arguments": {}}\n</tool_call>' },
    { format: 'qwen25', text: '<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>', content: '<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>' },
    { format: 'qwen25', text: '<tool_call>\n{}\n</tool_call>', content: '<tool_call>\n{}\n</tool_call>' },
    { format: 'qwen25', text: '<tool_call>\n{"function": "f"}</tool_call>', content: '<tool_call>\n{"function": "f"}</tool_call>' },
    // A broken call followed by a good one: the good one is found.
    {
      format: 'qwen25',
      text: '<tool_call>\n{"nme": "f"}\n</tool_call>\n<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>',
      content: '<tool_call>\n{"nme": "f"}\n</tool_call>',
      calls: ['g'],
    },
    { format: 'llama3', text: '{"answer": 42}', content: '{"answer": 42}' },
    { format: 'llama3', text: '{"name": "Ada", "age": 36}', content: '{"name": "Ada", "age": 36}' },
    { format: 'llama3', text: '<|python_tag|>brave_search.call(query="x")', content: '<|python_tag|>brave_search.call(query="x")' },
    { format: 'llama3', text: '{"name": "f", "parameters": "{}"}', content: '{"name": "f", "parameters": "{}"}' },
    { format: 'mistral', text: '[TOOL_CALLS] []', content: '[TOOL_CALLS] []' },
    { format: 'mistral', text: '[TOOL_CALLS] {"name": "f"}', content: '[TOOL_CALLS] {"name": "f"}' },
    { format: 'mistral', text: '[TOOL_CALLS] [{"name": "f", "arguments": {}}, {"nam', content: '{"nam', calls: ['f'] },
    // Failures after the call was announced: parse keeps the text as content; the stream has sent
    // the call and what arguments it had, sends nothing more for it, and goes on after the break.
    { format: 'qwen25', text: '<tool_call>\n{"name": "f", "arguments": {"a": "cut', content: '<tool_call>\n{"name": "f", "arguments": {"a": "cut', streamCalls: ['f'], streamContent: null },
    { format: 'qwen25', text: '<tool_call>\n{"name": "f", "arguments": {"a": 1}', content: '<tool_call>\n{"name": "f", "arguments": {"a": 1}', streamCalls: ['f'], streamContent: null },
    { format: 'qwen25', text: '<tool_call>\n{"name": "f", "arguments": {"a": tru}}</tool_call> ok', content: '<tool_call>\n{"name": "f", "arguments": {"a": tru}}</tool_call> ok', streamCalls: ['f'], streamContent: '}}</tool_call> ok' },
    { format: 'qwen25', text: '<tool_call>\n{"name": "f", "args": {}}', content: '<tool_call>\n{"name": "f", "args": {}}', streamCalls: ['f'], streamContent: ': {}}' },
    { format: 'llama3', text: '{"name": "f", "parameters": {"a": [1, }', content: '{"name": "f", "parameters": {"a": [1, }', streamCalls: ['f'], streamContent: '}' },
    { format: 'mistral', text: '[TOOL_CALLS] [{"name": "f", "arguments": {"x": "y"}}, {"name": "g", "arguments": {"z"', content: '{"name": "g", "arguments": {"z"', calls: ['f'], streamCalls: ['f', 'g'], streamContent: null },
  ];
  for (const c of cases) {
    const p = toolCallParser(c.format);
    const parsed = p.parse(c.text);
    assert.equal(parsed.content, c.content, `${c.format} parse content: ${c.text}`);
    assert.deepEqual(parsed.calls.map((x) => x.name), c.calls ?? [], `${c.format} parse calls: ${c.text}`);
    for (const call of parsed.calls) JSON.parse(call.arguments);
    for (const chunks of chunkings(c.text, 3, 4)) {
      const events = streamEvents(p, chunks);
      const got = collect(events);
      if (c.streamCalls === undefined) {
        assert.deepEqual(got, parsed, `${c.format} stream = parse: ${c.text}`);
        continue;
      }
      assert.deepEqual(got.calls.map((x) => x.name), c.streamCalls, `${c.format} stream calls: ${c.text}`);
      assert.equal(got.content, c.streamContent, `${c.format} stream content: ${c.text}`);
      // What was sent of a broken call's arguments is a prefix of what the model wrote, never more.
      for (const call of got.calls) assert.ok(c.text.includes(call.arguments), call.arguments);
    }
  }
});

test('end() of a cut-off call emits no closing arguments and no content for the announced part', () => {
  for (const format of FORMATS) {
    const text = render(format, [{ name: 'f', args: '{"a": "b"}' }]);
    const cut = text.slice(0, text.indexOf('"b') + 2);
    const s = toolCallParser(format).stream();
    const before = s.push(cut);
    assert.deepEqual(collect(before).calls, [{ name: 'f', arguments: '{"a": "b' }], format);
    assert.deepEqual(s.end(), [], format);
    assert.deepEqual(toolCallParser(format).parse(cut), { content: cut, calls: [] });
  }
});

test('stream events: indices count calls from 0 and a broken call\'s index is not reused', () => {
  const text = '<tool_call>\n{"name": "a", "arguments": {"x": nul}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>';
  const events: ToolStreamEvent[] = streamEvents(toolCallParser('qwen25'), [text]);
  assert.deepEqual(
    events.filter((e) => e.type === 'call'),
    [
      { type: 'call', index: 0, name: 'a' },
      { type: 'call', index: 1, name: 'b' },
    ],
  );
  assert.deepEqual(toolCallParser('qwen25').parse(text).calls, [{ name: 'b', arguments: '{}' }]);
});
