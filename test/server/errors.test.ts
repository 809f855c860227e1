import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { IrisServer, JsonResponse, assertError, chatBody, getJson, goldenChatCase, postJson, startIris, waitFor } from '../helpers/server.js';

/**
 * Request errors: every class answers its status with the OpenAI error body
 * {object:"error", message, type, param, code}, the message names the field, and the
 * server keeps serving others. One server with a small context and a small body limit.
 */

const CONTEXT = 128;
let iris: IrisServer;

before(async () => {
  iris = await startIris(['--context-length', String(CONTEXT), '--max-body-mb', '0.01']);
});

after(async () => {
  await iris?.stop();
});

const chat = (body: unknown) => postJson(iris.baseUrl, '/v1/chat/completions', body);
const good = () => chat(chatBody(['hi'], { max_tokens: 3 }));

async function assertStillServing(what: string): Promise<void> {
  const r = await good();
  assert.equal(r.status, 200, `after ${what}, a good request fails: ${r.text}`);
  assert.equal(r.json.usage.completion_tokens, 3);
}

describe('malformed bodies', () => {
  test('invalid JSON -> 400 saying the body is not valid JSON', async () => {
    assertError(await chat('{"messages": [{"role": "user", "content": "hi"}'), 400, ['JSON']);
    await assertStillServing('invalid JSON');
  });

  test('empty body with Content-Type: application/json -> 400', async () => {
    const res = await fetch(`${iris.baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    assertError({ status: res.status, headers: res.headers, text, json: JSON.parse(text) }, 400, ['JSON']);
  });

  test('a JSON array or string instead of an object -> 400', async () => {
    assertError(await chat([1, 2]), 400, ['object']);
    assertError(await chat('"hello"'), 400, ['object']);
    assertError(await postJson(iris.baseUrl, '/generate', 'null'), 400, ['object']);
  });
});

describe('wrong types and values name the field', () => {
  const cases: Array<[string, Record<string, unknown>, string, Array<string | RegExp>]> = [
    ['temperature "hot"', { ...chatBody(['hi']), temperature: 'hot' }, 'temperature', ['temperature', 'number']],
    ['temperature 5 (over 2)', { ...chatBody(['hi']), temperature: 5 }, 'temperature', ['temperature']],
    ['messages not an array', { messages: 'hi' }, 'messages', ['messages', 'array']],
    ['messages missing', { max_tokens: 3 }, 'messages', ['messages']],
    ['messages empty', { messages: [] }, 'messages', ['messages', 'empty']],
    ['bad role', { messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role', ['messages[0].role', 'user']],
    ['max_tokens 0', { ...chatBody(['hi']), max_tokens: 0 }, 'max_tokens', ['max_tokens']],
    ['max_tokens 2.5', { ...chatBody(['hi']), max_tokens: 2.5 }, 'max_tokens', ['max_tokens']],
    ['n 0', { ...chatBody(['hi']), n: 0 }, 'n', [/^n\b/]],
    ['top_p 0', { ...chatBody(['hi']), top_p: 0 }, 'top_p', ['top_p']],
    ['stop a number', { ...chatBody(['hi']), stop: 7 }, 'stop', ['stop']],
    ['stream "yes"', { ...chatBody(['hi']), stream: 'yes' }, 'stream', ['stream']],
    ['image_url.url empty', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '' } }] }] }, 'messages[0].content[0].image_url.url', ['messages[0].content[0].image_url.url', 'empty']],
    ['top_logprobs 30', { ...chatBody(['hi']), logprobs: true, top_logprobs: 30 }, 'top_logprobs', ['top_logprobs']],
    ['mm_processor_kwargs the processor does not take', { ...chatBody(['hi']), mm_processor_kwargs: { max_slice_nums: 4 } }, 'mm_processor_kwargs', ['mm_processor_kwargs.max_slice_nums', 'takes none']],
  ];
  for (const [name, body, param, fragments] of cases) {
    test(`${name} -> 400 naming ${param}`, async () => {
      const r = await chat(body);
      assertError(r, 400, fragments, name);
      assert.equal(r.json.param, param, `param of ${name}`);
      assert.equal(r.json.type, 'BadRequestError');
    });
  }

  test('top_logprobs without logprobs -> 400 naming top_logprobs', async () => {
    const r = await chat(chatBody(['hi'], { top_logprobs: 2 }));
    assertError(r, 400, ['top_logprobs', 'logprobs']);
    assert.equal(r.json.param, 'top_logprobs');
  });

  test('an invalid content part -> 400 naming the part and what is wrong, not just "Invalid input"', async () => {
    // Unknown part type: the schema means to say 'content parts must have type "text" or "image_url"' (protocol/chat.ts).
    const r = await chat({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'video_url', video_url: { url: 'http://127.0.0.1:9/v.mp4' } }] }],
    });
    const msg = assertError(r, 400, ['messages[0].content']);
    const problems: string[] = [];
    if (!(/image_url/.test(msg) && /text/.test(msg))) problems.push(`unknown type: should say which part types are allowed, got: ${msg}`);
    if (!/\[1\]|video_url/.test(msg)) problems.push(`unknown type: should name the offending part (content[1], type video_url), got: ${msg}`);
    // A bad field inside a known part.
    const bad = [
      [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA', detail: 'ultra' } }, 'detail'],
      [{ type: 'text' }, 'text'],
      [{ type: 'image_url' }, 'image_url'],
    ] as const;
    for (const [part, field] of bad) {
      const m = assertError(await chat({ messages: [{ role: 'user', content: [part] }] }), 400, ['messages[0].content']);
      if (!(m.includes('content[0]') && m.includes(field))) problems.push(`${JSON.stringify(part)}: should name content[0].${field}, got: ${m}`);
    }
    assert.deepEqual(problems, []);
  });

  test('/generate without text or input_ids, and /generate with a bad sampling param', async () => {
    assertError(await postJson(iris.baseUrl, '/generate', { sampling_params: { max_new_tokens: 3 } }), 400, ['text', 'input_ids']);
    const r = await postJson(iris.baseUrl, '/generate', { text: 'hi', sampling_params: { max_new_tokens: 'many' } });
    assertError(r, 400, ['sampling_params.max_new_tokens']);
  });

  test('token ids outside the vocabulary -> 400 naming the field (not a 500)', async () => {
    const g = await postJson(iris.baseUrl, '/generate', { input_ids: [1, 2, 99_999], sampling_params: { max_new_tokens: 2 } });
    assertError(g, 400, ['input_ids', '99999'], '/generate input_ids');
    const c = await postJson(iris.baseUrl, '/v1/completions', { prompt: [5, 100_000], max_tokens: 2 });
    assertError(c, 400, ['prompt', '100000'], '/v1/completions prompt ids');
    await assertStillServing('out-of-vocabulary ids');
  });

  test('an empty prompt -> 400 at once (not a request that never ends)', async () => {
    const within = async (path: string, body: unknown) => {
      try {
        return await postJson(iris.baseUrl, path, body, { signal: AbortSignal.timeout(2000) });
      } catch (e) {
        assert.fail(`${path} ${JSON.stringify(body)}: no answer within 2 s (${(e as Error).name})`);
      }
    };
    try {
      assertError(await within('/generate', { text: '', sampling_params: { max_new_tokens: 3 } }), 400, ['empty'], '/generate text ""');
      assertError(await within('/v1/completions', { prompt: '', max_tokens: 3 }), 400, ['empty'], '/v1/completions prompt ""');
      assertError(await within('/v1/completions', { prompt: ['hi', ''], max_tokens: 3 }), 400, ['empty'], '/v1/completions prompt ["hi", ""]');
    } finally {
      // Whatever happened, the abandoned requests must not stay in the engine.
      const freed = await waitFor(async () => (await getJson(iris.baseUrl, '/get_server_info')).json.num_running_reqs === 0, 2000);
      assert.ok(freed, 'the engine is idle again once the clients gave up');
    }
  });

  test('/v1/completions: missing prompt, negative token id', async () => {
    assertError(await postJson(iris.baseUrl, '/v1/completions', { max_tokens: 3 }), 400, ['prompt']);
    assertError(await postJson(iris.baseUrl, '/v1/completions', { prompt: [1, -2], max_tokens: 3 }), 400, ['prompt']);
  });
});

describe('input strictness', () => {
  test('a body that is not UTF-8 is a 400 naming the first bad byte; UTF-8 text is fine', async () => {
    const head = '{"messages":[{"role":"user","content":"h';
    const res = await fetch(`${iris.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from(head), Buffer.from([0xff, 0xfe]), Buffer.from('i"}],"max_tokens":2}')]),
    });
    const text = await res.text();
    assertError({ status: res.status, headers: res.headers, text, json: JSON.parse(text) }, 400, ['not valid UTF-8', `offset ${Buffer.byteLength(head)}`]);
    const ok = await chat(chatBody(['héllo ✓ 日本'], { max_tokens: 2 }));
    assert.equal(ok.status, 200, ok.text);
  });

  test('/generate: sampling parameters Iris does not implement are refused by name', async () => {
    for (const key of ['structural_tag', 'no_stop_trim', 'custom_params', 'logit_bias', 'max_new_token']) {
      const r = await postJson(iris.baseUrl, '/generate', { text: 'a', sampling_params: { max_new_tokens: 2, [key]: true } });
      assertError(r, 400, ['sampling_params', key], key);
    }
    const fine = await postJson(iris.baseUrl, '/generate', { text: 'a', sampling_params: { max_new_tokens: 2, regex: 'ab' } });
    assert.equal(fine.status, 200, fine.text);
  });
});

describe('unsupported features are refused, not ignored', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['functions (the legacy form of tools)', { functions: [{ name: 'get_weather', parameters: { type: 'object' } }] }, 'functions'],
    ['function_call', { function_call: { name: 'get_weather' } }, 'function_call'],
    ['logit_bias', { logit_bias: { '5': 10 } }, 'logit_bias'],
    ['audio output', { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'audio'],
  ];
  for (const [name, extra, param] of cases) {
    test(`${name} -> 400 "not supported"`, async () => {
      const r = await chat(chatBody(['hi'], extra));
      assertError(r, 400, [param, 'not supported']);
      assert.equal(r.json.param, param);
    });
  }

  test('harmless defaults are accepted: response_format text, tool_choice none, empty tools', async () => {
    const r = await chat(chatBody(['hi'], { max_tokens: 2, response_format: { type: 'text' }, tool_choice: 'none', tools: [] }));
    assert.equal(r.status, 200, r.text);
  });

  test('/v1/completions echo and best_of -> 400 "not supported"', async () => {
    assertError(await postJson(iris.baseUrl, '/v1/completions', { prompt: 'hi', echo: true }), 400, ['echo', 'not supported']);
    assertError(await postJson(iris.baseUrl, '/v1/completions', { prompt: 'hi', best_of: 3 }), 400, ['best_of', 'not supported']);
  });

  test('the openai client surfaces the error as BadRequestError (status 400)', async () => {
    const client = new OpenAI({ baseURL: `${iris.baseUrl}/v1`, apiKey: 'None', maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        logit_bias: { '5': 10 },
      }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.status, 400);
        // The client reads OpenAI's {"error": {...}} envelope; the SGLang body is top-level
        // {object:"error", message, ...}, so the client only shows "400 status code (no body)".
        // (Reported as an observation, not asserted: the SGLang shape is the documented one.)
        return true;
      },
    );
  });
});

describe('limits', () => {
  test(`prompt + max_tokens over --context-length ${CONTEXT} -> 400 with the numbers`, async () => {
    const g = await goldenChatCase();
    const r = await chat({ messages: g.messages, max_tokens: 100, temperature: 0 });
    const total = g.expected.prompt_tokens + 100;
    assertError(r, 400, [String(CONTEXT), String(g.expected.prompt_tokens), '100', String(total)]);
    assert.equal(r.json.param, 'max_tokens');
    // Fitting in the context works.
    const ok = await chat({ messages: g.messages, max_tokens: CONTEXT - g.expected.prompt_tokens, temperature: 0, ignore_eos: true });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.usage.total_tokens, CONTEXT);
  });

  test('a prompt alone longer than the context -> 400 with the numbers', async () => {
    const long = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
    const r = await chat(chatBody([long]));
    assertError(r, 400, [String(CONTEXT)]);
    assert.match(r.json.message, /prompt has \d{3,} tokens/);
    const c = await postJson(iris.baseUrl, '/v1/completions', { prompt: long, max_tokens: 5 });
    assertError(c, 400, [String(CONTEXT)]);
  });

  test('no max_tokens: the completion is capped to fit the context', async () => {
    const r = await chat({ messages: [{ role: 'user', content: 'hi' }], temperature: 0, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.usage.total_tokens, CONTEXT);
    assert.equal(r.json.choices[0].finish_reason, 'length');
  });

  test('body over --max-body-mb 0.01 -> 413', async () => {
    const big = chatBody(['x'.repeat(20_000)]);
    const r = await chat(big);
    assertError(r, 413, ['too large']);
    await assertStillServing('a 413');
  });

  test('unknown route -> 404 in the error shape, naming the route', async () => {
    assertError(await getJson(iris.baseUrl, '/v1/nope'), 404, ['/v1/nope']);
    assertError(await postJson(iris.baseUrl, '/v2/chat/completions', chatBody(['hi'])), 404, ['/v2/chat/completions']);
    assertError(await getJson(iris.baseUrl, '/v1/chat/completions'), 404, ['GET']);
  });
});

describe('the server keeps serving', () => {
  test('bad and good requests sent concurrently: each gets its own answer', async () => {
    const bads: Array<[Promise<JsonResponse>, number]> = [
      [chat('{not json'), 400],
      [chat({ messages: 'nope' }), 400],
      [chat(chatBody(['hi'], { tools: [{ type: 'function', function: { description: 'no name' } }] })), 400],
      [chat(chatBody(['x'.repeat(20_000)])), 413],
      [chat(chatBody(['Look', { url: 'data:image/png;base64,AAAA' }])), 400],
      [chat(chatBody(['Look', { url: 'http://127.0.0.1:9/none.png' }])), 400],
    ];
    const fiveHundreds = async () => {
      const m = await (await fetch(`${iris.baseUrl}/metrics`)).text();
      return [...m.matchAll(/^iris_requests_total\{[^}]*status="5\d\d"\} (\d+)/gm)].reduce((a, x) => a + Number(x[1]), 0);
    };
    const fiveBefore = await fiveHundreds();
    const goods = [good(), chat(chatBody(['hello'], { max_tokens: 5, stream: false })), good()];
    const [badRes, goodRes] = await Promise.all([Promise.all(bads.map(([p]) => p)), Promise.all(goods)]);
    badRes.forEach((r, i) => assertError(r, bads[i]![1], [], `bad request ${i}`));
    for (const r of goodRes) assert.equal(r.status, 200, r.text);
    await assertStillServing('a burst of bad requests');
    const h = await fetch(`${iris.baseUrl}/health`);
    assert.equal(h.status, 200);
    assert.equal(await fiveHundreds(), fiveBefore, 'no 5xx answered for client errors');
  });

  test('the error responses are counted in /metrics', async () => {
    const m = await (await fetch(`${iris.baseUrl}/metrics`)).text();
    assert.match(m, /iris_requests_total\{route="\/v1\/chat\/completions",status="400"\} [1-9]/);
    assert.match(m, /status="413"\} [1-9]/);
    assert.match(m, /status="404"\} [1-9]/);
  });
});
