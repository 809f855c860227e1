import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { schemaViolation } from '../helpers/jsonSchemaValidate.js';
import { IrisServer, JsonResponse, assertError, chatBody, dataUri, getJson, makeImages, postJson, postStream, readSse, startIris } from '../helpers/server.js';

/**
 * Tool calls over /v1/chat/completions on the random-weight tiny Qwen2.5-VL: its free output is
 * noise, so only forced calls (tool_choice "required" or a named function, grammar-constrained)
 * are predictable; "auto" is checked for a well-formed answer.
 */

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather forecast of a city.',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', minLength: 1, maxLength: 12 },
          unit: { enum: ['celsius', 'fahrenheit'] },
          days: { type: 'integer', minimum: 1, maximum: 7 },
        },
        required: ['city', 'unit'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'search_products',
      description: 'Searches the catalogue.',
      parameters: {
        type: 'object',
        properties: {
          query: { type: 'string', maxLength: 10 },
          filters: {
            type: 'object',
            properties: {
              category: { enum: ['shoes', 'hats', 'bags'] },
              max_price: { type: 'integer', minimum: 0, maximum: 500 },
              in_stock: { type: 'boolean' },
            },
            required: ['category', 'max_price'],
            additionalProperties: false,
          },
          limit: { type: 'integer', minimum: 1, maximum: 10 },
        },
        required: ['query', 'filters'],
        additionalProperties: false,
      },
    },
  },
] as const;

const SCHEMAS = new Map<string, unknown>(TOOLS.map((t) => [t.function.name, t.function.parameters]));
const ID = /^call_[A-Za-z0-9]{24}$/;

let iris: IrisServer;
let image: string;

before(async () => {
  [iris, image] = await Promise.all([startIris(), makeImages().then((i) => dataUri(i.png))]);
});

after(async () => {
  await iris?.stop();
});

interface Call {
  id: string;
  type: string;
  name: string;
  arguments: string;
}
interface Choice {
  content: string | null;
  calls: Call[] | null;
  finish: string;
}

const chat = (body: Record<string, unknown>) => postJson(iris.baseUrl, '/v1/chat/completions', body);

function choicesOf(r: JsonResponse): Choice[] {
  assert.equal(r.status, 200, r.text);
  return r.json.choices.map((c: any) => ({
    content: c.message.content,
    calls: c.message.tool_calls?.map((t: any) => ({ id: t.id, type: t.type, name: t.function.name, arguments: t.function.arguments })) ?? null,
    finish: c.finish_reason,
  }));
}

/**
 * Reads a streamed chat completion into its choices, checking the stream's shape on the way: the
 * role comes first; a call's first delta carries its id, type and name (and empty arguments), the
 * next ones only its index and argument fragments; calls are numbered 0, 1, ... per choice.
 */
async function streamed(body: Record<string, unknown>, base = iris.baseUrl): Promise<Choice[]> {
  const res = await postStream(base, '/v1/chat/completions', { ...body, stream: true });
  assert.equal(res.status, 200, await (res.status === 200 ? Promise.resolve('') : res.text()));
  const out: Array<Choice & { role: boolean }> = [];
  for (const ev of await readSse(res)) {
    if (ev === '[DONE]') continue;
    const j = JSON.parse(ev);
    assert.equal(j.object, 'chat.completion.chunk', ev);
    for (const c of j.choices) {
      const ch = (out[c.index] ??= { role: false, content: null, calls: null, finish: '' });
      assert.equal(ch.finish, '', `nothing after the finish chunk: ${ev}`);
      const d = c.delta;
      if (d.role) {
        assert.equal(ch.role, false, 'one role delta');
        ch.role = true;
      } else {
        assert.ok(ch.role, `the role delta comes first: ${ev}`);
      }
      if (d.content) ch.content = (ch.content ?? '') + d.content;
      for (const t of d.tool_calls ?? []) {
        ch.calls ??= [];
        if (t.index === ch.calls.length) {
          assert.match(t.id, ID, ev);
          assert.equal(t.type, 'function', ev);
          assert.equal(typeof t.function.name, 'string', ev);
          assert.equal(t.function.arguments, '', ev);
          ch.calls.push({ id: t.id, type: t.type, name: t.function.name, arguments: '' });
        } else {
          assert.equal(t.index, ch.calls.length - 1, `arguments for the open call: ${ev}`);
          assert.deepEqual(Object.keys(t).sort(), ['function', 'index'], ev);
          assert.deepEqual(Object.keys(t.function), ['arguments'], ev);
          ch.calls[t.index]!.arguments += t.function.arguments;
        }
      }
      if (c.finish_reason) ch.finish = c.finish_reason;
    }
  }
  assert.equal(out.length, (body.n as number | undefined) ?? 1);
  return out.map(({ content, calls, finish }) => ({ content, calls, finish }));
}

const ask = (body: Record<string, unknown>, stream: boolean) => (stream ? streamed(body) : chat(body).then(choicesOf));

/** A forced answer: only calls, ids unique, names offered, arguments JSON that conforms. */
function assertCalls(c: Choice, what: string, names: readonly string[] = [...SCHEMAS.keys()]): Call[] {
  const where = `${what}: ${JSON.stringify(c)}`;
  assert.equal(c.finish, 'tool_calls', where);
  assert.ok(c.content === null || c.content === '', where);
  assert.ok(Array.isArray(c.calls) && c.calls.length >= 1, where);
  for (const call of c.calls) {
    assert.match(call.id, ID, where);
    assert.equal(call.type, 'function', where);
    assert.ok(names.includes(call.name), where);
    let args: unknown;
    assert.doesNotThrow(() => (args = JSON.parse(call.arguments)), where);
    assert.equal(schemaViolation(args, SCHEMAS.get(call.name)), null, where);
  }
  assert.equal(new Set(c.calls.map((x) => x.id)).size, c.calls.length, `ids are unique: ${where}`);
  return c.calls;
}

const forced = (seed: number, extra: Record<string, unknown> = {}) =>
  chatBody(seed % 3 === 0 ? [{ url: image }, 'What should I call?'] : ['What is the weather in Paris?'], { tools: TOOLS, tool_choice: 'required', max_tokens: 600, temperature: 1, seed, ...extra });

describe('tool_choice "required"', () => {
  test('every answer is calls of the offered tools with conforming arguments (6 seeds, streamed and not, with and without an image, n = 2)', async () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 6; seed++) {
      const choices = await ask(forced(seed, seed === 4 ? { n: 2 } : {}), seed % 2 === 1);
      assert.equal(choices.length, seed === 4 ? 2 : 1);
      choices.forEach((c, i) => assertCalls(c, `seed ${seed} choice ${i}`).forEach((call) => seen.add(call.name)));
    }
    assert.equal(seen.size, 2, `both tools get called across the seeds: ${[...seen].join(', ')}`);
  });

  test('parallel_tool_calls false: exactly one call', async () => {
    for (let seed = 10; seed < 14; seed++) {
      const [c] = await ask(forced(seed, { parallel_tool_calls: false }), seed % 2 === 0);
      assert.equal(assertCalls(c!, `seed ${seed}`).length, 1, JSON.stringify(c));
    }
  });

  test('the raw output is in the qwen25 format, which the server reports', async () => {
    const info = await getJson(iris.baseUrl, '/get_server_info');
    assert.equal(info.json.tool_call_parser, 'qwen25');
    const r = await chat(forced(1, { parallel_tool_calls: false, logprobs: true }));
    const raw = r.json.choices[0].logprobs.content.map((t: { token: string }) => t.token).join('');
    // The tokens end with the end-of-turn token the grammar allows once the call is complete.
    assert.match(raw, /^<tool_call>\n\{"name": "(get_weather|search_products)", "arguments": \{.*\}\}\n<\/tool_call>(<\|im_end\|>|<\|endoftext\|>)?$/s);
    assertCalls(choicesOf(r)[0]!, 'with logprobs');
  });
});

test('a named function: always that one', async () => {
  for (let seed = 20; seed < 24; seed++) {
    const [c] = await ask(forced(seed, { tool_choice: { type: 'function', function: { name: 'search_products' } } }), seed % 2 === 1);
    const calls = assertCalls(c!, `seed ${seed}`, ['search_products']);
    assert.ok(calls.every((x) => x.name === 'search_products'));
  }
});

test('streaming: the fragments of each call join into the arguments the non-streamed answer has', async () => {
  for (const seed of [30, 33]) {
    const body = forced(seed, { temperature: 0 });
    const [plain] = choicesOf(await chat(body));
    const [live] = await streamed(body);
    assertCalls(live!, `streamed seed ${seed}`);
    assert.deepEqual(
      live!.calls!.map(({ name, arguments: a }) => ({ name, arguments: a })),
      plain!.calls!.map(({ name, arguments: a }) => ({ name, arguments: a })),
    );
  }
});

describe('tool_choice "auto" and "none"', () => {
  test('auto: a well-formed answer, content or calls, streamed and not', async () => {
    for (const stream of [false, true]) {
      for (let seed = 40; seed < 42; seed++) {
        const choices = await ask(chatBody(['Weather in Paris?'], { tools: TOOLS, max_tokens: 24, temperature: 1, seed, n: 2 }), stream);
        for (const c of choices) {
          if (c.calls) {
            assertCalls({ ...c, content: null }, 'auto');
          } else {
            assert.equal(typeof c.content, 'string', JSON.stringify(c));
            assert.ok(['stop', 'length'].includes(c.finish), JSON.stringify(c));
          }
        }
      }
    }
  });

  test('none: the tools are not rendered (the prompt is the one without tools) and no calls are read', async () => {
    const base = chatBody(['Weather in Paris?'], { max_tokens: 4, temperature: 0 });
    const plain = await chat(base);
    const none = await chat({ ...base, tools: TOOLS, tool_choice: 'none' });
    const auto = await chat({ ...base, tools: TOOLS, tool_choice: 'auto' });
    for (const r of [plain, none, auto]) assert.equal(r.status, 200, r.text);
    assert.equal(none.json.usage.prompt_tokens, plain.json.usage.prompt_tokens);
    assert.equal(none.json.choices[0].message.content, plain.json.choices[0].message.content);
    assert.equal(none.json.choices[0].message.tool_calls, null);
    assert.ok(auto.json.usage.prompt_tokens > plain.json.usage.prompt_tokens + 100, 'auto renders the tools');
  });
});

describe('conversation history', () => {
  const history = (args: string, result: string) => [
    { role: 'system', content: 'You plan trips.' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'Weather where this was taken?' }] },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_abcdefghijklmnopqrstuvwx', type: 'function', function: { name: 'get_weather', arguments: args } }] },
    { role: 'tool', tool_call_id: 'call_abcdefghijklmnopqrstuvwx', content: result },
  ];

  test('a second turn with the assistant\'s calls and their results renders and runs', async () => {
    const [c] = choicesOf(await chat({ messages: history('{"city": "Paris", "unit": "celsius"}', '{"temp": 21}'), tools: TOOLS, tool_choice: 'required', max_tokens: 600, temperature: 1, seed: 50 }));
    assertCalls(c!, 'second turn');
    const [s] = await streamed({ messages: [...history('{"city": "Oslo", "unit": "celsius"}', 'cold'), { role: 'tool', tool_call_id: 'x', content: 'windy' }], tools: TOOLS, max_tokens: 6, temperature: 1, seed: 51 });
    assert.ok(s!.finish, JSON.stringify(s));
  });

  test('the earlier calls are in the prompt (the model\'s template does not render tool_calls: they are written as text)', async () => {
    const usage = async (args: string, withTools: boolean) => {
      const r = await chat({ messages: history(args, 'ok'), ...(withTools ? { tools: TOOLS } : {}), max_tokens: 1, temperature: 0 });
      assert.equal(r.status, 200, r.text);
      return r.json.usage.prompt_tokens as number;
    };
    for (const withTools of [false, true]) {
      const short = await usage('{"city": "Rome", "unit": "celsius"}', withTools);
      const long = await usage('{"city": "Rome, Lazio, Italia", "unit": "celsius", "days": 7}', withTools);
      assert.ok(long > short, `the call's arguments reach the prompt (tools ${withTools}): ${long} vs ${short}`);
    }
  });
});

describe('the openai client', () => {
  const client = () => new OpenAI({ baseURL: `${iris.baseUrl}/v1`, apiKey: 'None', maxRetries: 0, timeout: 30_000 });
  const tools = TOOLS as unknown as OpenAI.Chat.ChatCompletionTool[];

  test('reads tool_calls of a non-streamed answer', async () => {
    const r = await client().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Search for hats.' }], tools, tool_choice: 'required', max_tokens: 600, temperature: 1, seed: 60 });
    const m = r.choices[0]!.message;
    assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
    assert.ok(m.tool_calls && m.tool_calls.length >= 1);
    for (const t of m.tool_calls) {
      assert.equal(t.type, 'function');
      if (t.type !== 'function') continue;
      assert.match(t.id, ID);
      assert.equal(schemaViolation(JSON.parse(t.function.arguments), SCHEMAS.get(t.function.name)), null, t.function.arguments);
    }
  });

  test('accumulates delta.tool_calls of a streamed answer', async () => {
    const stream = await client().chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'Weather?' }],
      tools,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      max_tokens: 600,
      temperature: 1,
      seed: 61,
      stream: true,
    });
    const calls: Array<{ id: string; name: string; arguments: string }> = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      if (!ch) continue;
      for (const t of ch.delta.tool_calls ?? []) {
        if (t.id) calls[t.index] = { id: t.id, name: t.function?.name ?? '', arguments: '' };
        calls[t.index]!.arguments += t.function?.arguments ?? '';
      }
      finish = ch.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.ok(calls.length >= 1);
    for (const c of calls) {
      assert.match(c.id, ID);
      assert.equal(c.name, 'get_weather');
      assert.equal(schemaViolation(JSON.parse(c.arguments), SCHEMAS.get('get_weather')), null, c.arguments);
    }
  });
});

describe('invalid requests -> 400 naming the field', () => {
  const cases: Array<[string, Record<string, unknown>, string, string[]]> = [
    ['a tool without a name', { tools: [{ type: 'function', function: { description: 'nameless', parameters: { type: 'object' } } }] }, 'tools', ['tools[0].function.name']],
    ['a tool that is not a function', { tools: [{ type: 'retrieval' }] }, 'tools', ['tools[0].type']],
    ['tool_choice naming an unknown function', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'book_flight' } } }, 'tool_choice', ['book_flight', 'not in tools']],
    ['a bad tool_choice value', { tools: TOOLS, tool_choice: 'sometimes' }, 'tool_choice', ['sometimes']],
    ['tool_choice required without tools', { tool_choice: 'required' }, 'tool_choice', ['needs tools']],
    ['parallel_tool_calls not a boolean', { tools: TOOLS, parallel_tool_calls: 'yes' }, 'parallel_tool_calls', ['boolean']],
    [
      'response_format json_schema with tool_choice required',
      { tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } } },
      'response_format',
      ['tool_choice', 'response_format'],
    ],
    ['regex with a named function', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, regex: 'a+' }, 'regex', ['tool_choice', 'regex']],
    ['a parameters schema the grammar cannot take', { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', minLength: 5, maxLength: 2 } } } } }], tool_choice: 'required' }, 'tools', ['minLength']],
  ];
  for (const [name, extra, param, fragments] of cases) {
    test(name, async () => {
      for (const stream of [false, true]) {
        const r = await chat(chatBody(['hi'], { ...extra, stream }));
        assertError(r, 400, fragments, name);
        assert.equal(r.json.param, param);
      }
    });
  }

  test('a malformed call in the history', async () => {
    const r = await chat({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'x' }], max_tokens: 2 });
    assertError(r, 400, ['tool_calls[0]']);
    assert.equal(r.json.param, 'messages[1].tool_calls[0]');
  });

  test('response_format with tool_choice auto is allowed', async () => {
    const schema = { type: 'object', properties: { a: { enum: [1, 2] } }, required: ['a'], additionalProperties: false };
    const r = await chat(chatBody(['hi'], { tools: TOOLS, max_tokens: 30, temperature: 1, seed: 1, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.tool_calls, null);
    assert.equal(schemaViolation(JSON.parse(r.json.choices[0].message.content), schema), null, r.text);
  });
});

/** A template that renders `tools` (their names) and assistant `tool_calls` (their names) itself. */
const TOOLS_TEMPLATE = `{%- if tools %}<|im_start|>system
Tools: {% for t in tools %}{{ t.function.name }};{% endfor %}<|im_end|>
{% endif %}
{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.content is string %}{{ m.content }}{% elif m.content %}{% for c in m.content %}{% if c.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c.type == 'text' %}{{ c.text }}{% endif %}{% endfor %}{% endif %}
{%- if m.tool_calls %}{% for tc in m.tool_calls %}[call {{ tc.function.name }}]{% endfor %}{% endif %}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

describe('--tool-call-parser llama3 on a Qwen model, with a chat template that renders tools', () => {
  let llama: IrisServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'iris-tools-'));
    writeFileSync(join(dir, 'tools.jinja'), TOOLS_TEMPLATE);
    llama = await startIris(['--tool-call-parser', 'llama3', '--chat-template', join(dir, 'tools.jinja')]);
  });
  after(async () => {
    await llama?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const post = (body: Record<string, unknown>) => postJson(llama.baseUrl, '/v1/chat/completions', body);

  test('forced calls are written in llama3 format and read back, streamed and not', async () => {
    const info = await getJson(llama.baseUrl, '/get_server_info');
    assert.equal(info.json.tool_call_parser, 'llama3');
    const r = await post(forced(2, { logprobs: true }));
    assert.equal(r.status, 200, r.text);
    const raw = r.json.choices[0].logprobs.content.map((t: { token: string }) => t.token).join('');
    assert.match(raw, /^\{"name": "(get_weather|search_products)", "parameters": \{/);
    assert.doesNotMatch(raw, /<tool_call>|"arguments"/);
    const calls = assertCalls(choicesOf(r)[0]!, 'llama3');
    assert.equal(raw.split(/\}; \{"name": /).length, calls.length, `one call per "; "-separated object: ${raw}`);
    for (const seed of [3, 4]) assertCalls((await streamed(forced(seed), llama.baseUrl))[0]!, `llama3 streamed, seed ${seed}`);
  });

  test('the tools reach the template (not the fallback prompt)', async () => {
    const tokens = async (extra: Record<string, unknown>) => {
      const r = await post(chatBody(['Weather?'], { max_tokens: 1, ...extra }));
      assert.equal(r.status, 200, r.text);
      return r.json.usage.prompt_tokens as number;
    };
    const plain = await tokens({});
    const withTools = await tokens({ tools: TOOLS });
    const longer = await tokens({ tools: TOOLS.map((t) => ({ ...t, function: { ...t.function, description: `${t.function.description} ${'More words. '.repeat(20)}` } })) });
    assert.ok(withTools > plain, `${withTools} vs ${plain}`);
    assert.equal(longer, withTools, 'the template renders names only: descriptions do not reach the prompt');
    assert.equal(await tokens({ tools: TOOLS, tool_choice: 'none' }), plain);
  });

  test('history stays structured for a template that renders tool_calls', async () => {
    const turn = (args: string) => [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'ok' },
    ];
    const a = await post({ messages: turn('{"city": "Rome"}'), tools: TOOLS, max_tokens: 1 });
    const b = await post({ messages: turn('{"city": "Rome, Lazio, Italia", "days": 7}'), tools: TOOLS, max_tokens: 1 });
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.equal(a.json.usage.prompt_tokens, b.json.usage.prompt_tokens, 'the template renders call names only: the arguments were not written as text');
    assertCalls(choicesOf(await post({ messages: turn('{}'), tools: TOOLS, tool_choice: 'required', max_tokens: 600, temperature: 1, seed: 5 }))[0]!, 'after history');
  });
});
