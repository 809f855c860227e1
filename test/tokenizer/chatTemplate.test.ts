import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChatTemplate, findChatTemplate } from '../../src/tokenizer/chatTemplate.js';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';
import { InvalidRequestError, ModelLoadError } from '../../src/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const qwen = ChatTemplate.load(join(root, 'test', 'fixtures', 'golden', 'qwen2_vl', 'model'));

// Pieces of the Qwen2-VL template's output, read off the template text.
const IMG = '<|vision_start|><|image_pad|><|vision_end|>';
const turn = (role: string, body: string) => `<|im_start|>${role}\n${body}<|im_end|>\n`;
const DEFAULT_SYSTEM = turn('system', 'You are a helpful assistant.');
const GEN = '<|im_start|>assistant\n';
const image = (url: string) => ({ type: 'image_url' as const, image_url: { url } });

test('Qwen: text-only prompt gets the default system turn', () => {
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hello there' }];
  assert.equal(qwen.render(msgs), DEFAULT_SYSTEM + turn('user', 'Hello there') + GEN);
  assert.equal(qwen.render(msgs, { addGenerationPrompt: false }), DEFAULT_SYSTEM + turn('user', 'Hello there'));
  assert.deepEqual(qwen.renderChat(msgs).images, []);
});

test('Qwen: multi-turn chat with a system prompt and images in order', () => {
  const msgs: ChatMessage[] = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: [image('https://x/a.png'), { type: 'text', text: 'Describe it.' }] },
    { role: 'assistant', content: 'A red square.' },
    {
      role: 'user',
      content: [{ type: 'text', text: 'Compare ' }, image('https://x/b.png'), { type: 'text', text: ' with ' }, { type: 'image', image: 'https://x/c.png' }],
    },
  ];
  const r = qwen.renderChat(msgs);
  assert.equal(
    r.prompt,
    turn('system', 'You are terse.') +
      turn('user', `${IMG}Describe it.`) +
      turn('assistant', 'A red square.') +
      turn('user', `Compare ${IMG} with ${IMG}`) +
      GEN,
  );
  assert.deepEqual(r.images.map((i) => [i.url, i.messageIndex, i.partIndex]), [
    ['https://x/a.png', 1, 0],
    ['https://x/b.png', 3, 1],
    ['https://x/c.png', 3, 3],
  ]);
  // Template kwargs reach the template (add_vision_id numbers the pictures).
  const numbered = qwen.render(msgs.slice(0, 2), { templateKwargs: { add_vision_id: true } });
  assert.equal(numbered, turn('system', 'You are terse.') + turn('user', `Picture 1: ${IMG}Describe it.`) + GEN);
});

test('Qwen: continue_final_message leaves the assistant turn open', () => {
  const msgs: ChatMessage[] = [
    { role: 'user', content: 'Count to three.' },
    { role: 'assistant', content: 'One, two,' },
  ];
  assert.equal(qwen.render(msgs, { continueFinalMessage: true }), DEFAULT_SYSTEM + turn('user', 'Count to three.') + '<|im_start|>assistant\nOne, two,');
  assert.throws(() => qwen.render(msgs, { continueFinalMessage: true, addGenerationPrompt: true }), InvalidRequestError);
});

test('bad messages are InvalidRequestErrors naming the field', () => {
  const bad: Array<[unknown, string]> = [
    [[], 'messages'],
    [[{ role: 'robot', content: 'x' }], 'messages[0].role'],
    [[{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }], 'messages[0].content[0].type'],
    [[{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }], 'messages[0].content[0].image_url'],
    [[{ role: 'user', content: [{ type: 'text', text: 5 }] }], 'messages[0].content[0].text'],
    [[{ role: 'user', content: 42 }], 'messages[0].content'],
  ];
  for (const [msgs, param] of bad) {
    assert.throws(() => qwen.render(msgs as ChatMessage[]), (e: unknown) => e instanceof InvalidRequestError && e.param === param, param);
  }
});

test('content format detection (vLLM-style) and the string-format fallback', () => {
  assert.equal(qwen.contentFormat(), 'openai');
  const plain = ChatTemplate.fromString("{% for message in messages %}[{{ message['role'] }}] {{ message['content'] }}\n{% endfor %}", {
    imagePlaceholder: '<image>',
  });
  assert.equal(plain.contentFormat(), 'string');
  // String templates get the text joined, one placeholder per image first (as vLLM does).
  const r = plain.renderChat([{ role: 'user', content: [image('u1'), { type: 'text', text: 'What?' }, { type: 'text', text: 'Why?' }] }]);
  assert.equal(r.prompt, '[user] <image>\nWhat?\nWhy?\n');
  assert.equal(r.images.length, 1);
  const noPlaceholder = ChatTemplate.fromString('{% for message in messages %}{{ message.content }}{% endfor %}');
  assert.throws(() => noPlaceholder.render([{ role: 'user', content: [image('u1')] }]), InvalidRequestError);
  // Content reached through a variable still counts as iterated.
  const viaSet = ChatTemplate.fromString("{% for msg in messages %}{% set c = msg['content'] %}{% for p in c %}{{ p.text }}{% endfor %}{% endfor %}");
  assert.equal(viaSet.contentFormat(), 'openai');
  const forced = ChatTemplate.fromString('{{ messages[0].content }}', { contentFormat: 'openai' });
  assert.equal(forced.contentFormat(), 'openai');
});

test('templates that loop over string content get it as a text part', () => {
  // Like Llama 3.2 Vision: scans every message's content for images, even string content.
  const t = ChatTemplate.fromString(
    "{% for message in messages %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<|image|>{% endif %}{% endfor %}" +
      "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}|{% endfor %}",
  );
  assert.equal(t.render([{ role: 'user', content: 'hi' }]), 'hi|');
  assert.equal(t.render([{ role: 'user', content: [image('u'), { type: 'text', text: 'x' }] }, { role: 'assistant', content: 'y' }]), '<|image|>x|y|');
});

test('tools default to none as in transformers; tool-call arguments reach the template as a mapping', () => {
  const t = ChatTemplate.fromString('{{ tools is none }}|{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.arguments.city }}{% endfor %}{% endif %}{% endfor %}');
  const msgs: ChatMessage[] = [
    { role: 'user', content: 'weather?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'w', arguments: '{"city": "Paris"}' } }] },
  ];
  assert.equal(t.render(msgs), 'true|Paris');
  assert.equal(t.render(msgs, { tools: [{ type: 'function', function: { name: 'w' } }] }), 'false|Paris');
});

test('templateText: the source render would use, with and without tools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-tpl-'));
  try {
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'default', template: 'D{{ tools is none }}' }, { name: 'tool_use', template: 'T{{ tools | length }}' }] }));
    const t = ChatTemplate.load(dir);
    assert.equal(t.templateText(), 'D{{ tools is none }}');
    assert.equal(t.templateText({ tools: true }), 'T{{ tools | length }}');
    assert.equal(t.render([{ role: 'user', content: 'x' }], { tools: [{ type: 'function', function: { name: 'f' } }] }), 'T1');
    const single = ChatTemplate.fromString('S');
    assert.equal(single.templateText({ tools: true }), 'S');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('raise_exception in a template is an InvalidRequestError', () => {
  const t = ChatTemplate.fromString("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok");
  assert.equal(t.render([{ role: 'user', content: 'a' }]), 'ok');
  assert.throws(() => t.render([{ role: 'assistant', content: 'a' }]), (e: unknown) => e instanceof InvalidRequestError && /first message/.test(e.message));
});

test('lookup order: chat_template.jinja, chat_template.json, tokenizer_config.json; override wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-tpl-'));
  const tpl = (tag: string) => `${tag}:{% for m in messages %}{{ m.content }}{% endfor %}:{{ eos_token }}`;
  const msgs: ChatMessage[] = [{ role: 'user', content: 'x' }];
  try {
    writeFileSync(join(dir, 'chat_template.jinja'), tpl('jinja'));
    writeFileSync(join(dir, 'chat_template.json'), JSON.stringify({ chat_template: tpl('json') }));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: tpl('config'), eos_token: { content: '</s>' } }));

    let t = ChatTemplate.load(dir);
    assert.equal(t.source, 'chat_template.jinja');
    assert.equal(t.path, join(dir, 'chat_template.jinja'));
    assert.equal(t.render(msgs), 'jinja:x:</s>');

    const overrideFile = join(dir, 'other.jinja');
    writeFileSync(overrideFile, tpl('file'));
    t = ChatTemplate.load(dir, overrideFile);
    assert.equal([t.source, t.path, t.render(msgs)].join('|'), `override|${overrideFile}|file:x:</s>`);
    t = ChatTemplate.load(dir, tpl('inline'));
    assert.equal([t.source, t.path, t.render(msgs)].join('|'), 'override||inline:x:</s>');
    assert.throws(() => ChatTemplate.load(dir, join(dir, 'missing.jinja')), ModelLoadError);
    const overrideJson = join(dir, 'other.json');
    writeFileSync(overrideJson, JSON.stringify({ chat_template: tpl('ojson') }));
    assert.equal(ChatTemplate.load(dir, overrideJson).render(msgs), 'ojson:x:</s>');

    unlinkSync(join(dir, 'chat_template.jinja'));
    t = ChatTemplate.load(dir);
    assert.equal(t.source, 'chat_template.json');
    assert.equal(t.render(msgs), 'json:x:</s>');

    unlinkSync(join(dir, 'chat_template.json'));
    t = ChatTemplate.load(dir);
    assert.equal(t.source, 'tokenizer_config.json');
    assert.equal(t.render(msgs), 'config:x:</s>');

    // A list of named templates: "default", or "tool_use" when tools are given.
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ chat_template: [{ name: 'tool_use', template: tpl('tools') + '{{ tools | length }}' }, { name: 'default', template: tpl('default') }] }),
    );
    t = ChatTemplate.load(dir);
    assert.deepEqual([...t.names], ['tool_use', 'default']);
    assert.equal(t.render(msgs), 'default:x:');
    assert.equal(t.render(msgs, { tools: [{ type: 'function', function: { name: 'f' } }] }), 'tools:x:1');
    assert.equal(t.render(msgs, { templateName: 'tool_use', tools: [] }), 'tools:x:0');

    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>' }));
    assert.equal(findChatTemplate(dir), null);
    assert.throws(() => ChatTemplate.load(dir), (e: unknown) => e instanceof ModelLoadError && e.message.includes(dir));

    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'chat_template.json'), '{"chat_template": ');
    assert.throws(() => ChatTemplate.load(join(dir, 'sub')), (e: unknown) => e instanceof ModelLoadError && e.message.includes('chat_template.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('built-in template names: qwen2-vl renders as the model folder template does; unknown names are explained', async () => {
  const { ChatTemplate: CT } = await import('../../src/tokenizer/chatTemplate.js');
  const { fixturePath } = await import('../helpers/paths.js');
  const dir = fixturePath('golden/qwen2_5_vl/model');
  const msgs = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: 'x' } }, { type: 'text' as const, text: 'Hi' }] }];
  assert.equal(CT.load(dir, 'qwen2-vl').render(msgs), CT.load(dir).render(msgs));
  assert.match(CT.load(dir, 'chatml').render([{ role: 'user', content: 'Hi' }]), /<\|im_start\|>user\nHi<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  assert.throws(() => CT.load(dir, 'no-such-template'), /neither a built-in name \(qwen2-vl, chatml/);
});
