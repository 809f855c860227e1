import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  ImageServer,
  IrisServer,
  chatBody,
  getJson,
  goldenChatCase,
  postJson,
  postStream,
  readSse,
  startImageServer,
  startIris,
} from '../helpers/server.js';

/**
 * The SGLang "OpenAI APIs - Vision" seed examples (/work/shared/seeds) against a real
 * `iris serve`, with the official openai client and with curl-style raw requests;
 * then the golden chat case, streaming, n, stop conditions and logprobs.
 */

const MODEL = 'Qwen/Qwen2.5-VL-7B-Instruct';
const TWO_IMAGES_TEXT =
  'I have two very different images. They are not related at all. ' +
  'Please describe the first image in one sentence, and then describe the second image in another sentence.';

let iris: IrisServer;
let images: ImageServer;
let client: OpenAI;

before(async () => {
  [iris, images] = await Promise.all([startIris(['--served-model-name', MODEL]), startImageServer()]);
  client = new OpenAI({ baseURL: `${iris.baseUrl}/v1`, apiKey: 'None', maxRetries: 0, timeout: 30_000 });
});

after(async () => {
  await Promise.all([iris?.stop(), images?.close()]);
});

/** The text-only chat prompt the model's template renders for one user message. */
const rendered = (user: string) => `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n${user}<|im_end|>\n<|im_start|>assistant\n`;

describe('seed examples (openai client)', () => {
  test('/v1/models lists the served model', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    assert.deepEqual(ids, [MODEL]);
    assert.equal(list.data[0]!.object, 'model');
    const raw = await getJson(iris.baseUrl, '/v1/models');
    assert.equal(raw.status, 200);
    assert.equal(raw.json.object, 'list');
    assert.equal(raw.json.data[0].id, MODEL);
  });

  test('single image by URL; the same request twice at temperature 0 gives the same answer', async () => {
    const before = images.hits('/image.png');
    const req = {
      model: MODEL,
      messages: [
        {
          role: 'user' as const,
          content: [
            { type: 'text' as const, text: 'What is in this image?' },
            { type: 'image_url' as const, image_url: { url: images.url('/image.png') } },
          ],
        },
      ],
      max_tokens: 300,
      temperature: 0,
    };
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    assert.equal(a.object, 'chat.completion');
    assert.equal(a.model, MODEL);
    assert.equal(a.choices.length, 1);
    assert.equal(a.choices[0]!.index, 0);
    assert.equal(a.choices[0]!.message.role, 'assistant');
    assert.equal(typeof a.choices[0]!.message.content, 'string');
    assert.ok(['stop', 'length'].includes(a.choices[0]!.finish_reason), a.choices[0]!.finish_reason);
    assert.ok(a.usage!.prompt_tokens > 20, `prompt_tokens ${a.usage!.prompt_tokens}`);
    assert.ok(a.usage!.completion_tokens >= 1 && a.usage!.completion_tokens <= 300);
    assert.equal(a.usage!.total_tokens, a.usage!.prompt_tokens + a.usage!.completion_tokens);
    assert.equal(b.choices[0]!.message.content, a.choices[0]!.message.content);
    assert.deepEqual(b.usage!.completion_tokens, a.usage!.completion_tokens);
    assert.equal(images.hits('/image.png') - before, 2, 'the image is fetched once per request');
    // A request without the image has fewer prompt tokens: the image was really used.
    const noImage = await client.chat.completions.create({ ...req, max_tokens: 1, messages: [{ role: 'user', content: 'What is in this image?' }] });
    assert.ok(noImage.usage!.prompt_tokens < a.usage!.prompt_tokens);
  });

  test('two images (seed: temperature 0, no max_tokens)', async () => {
    const res = await client.chat.completions.create({
      model: MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: images.url('/image.png') } },
            { type: 'image_url', image_url: { url: images.url('/image2.png') } },
            { type: 'text', text: TWO_IMAGES_TEXT },
          ],
        },
      ],
      temperature: 0,
    });
    const one = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: images.url('/image.png') } }, { type: 'text', text: TWO_IMAGES_TEXT }] }],
      temperature: 0,
      max_tokens: 1,
    });
    assert.equal(typeof res.choices[0]!.message.content, 'string');
    assert.ok(['stop', 'length'].includes(res.choices[0]!.finish_reason));
    assert.ok(res.usage!.prompt_tokens > one.usage!.prompt_tokens, `${res.usage!.prompt_tokens} vs ${one.usage!.prompt_tokens}`);
  });

  test('interleaved text and images (PNG, JPEG, data URI)', async () => {
    const data = `data:image/png;base64,${images.png2.toString('base64')}`;
    const parts = [
      'Here is a first picture:',
      { url: images.url('/image.png') },
      'and a second one:',
      { url: images.url('/image.jpg') },
      'and a third one:',
      { url: data, detail: 'low' },
      'What differs between them?',
    ];
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(parts, { max_tokens: 16 }));
    assert.equal(r.status, 200, r.text);
    const textOnly = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(parts.filter((p) => typeof p === 'string'), { max_tokens: 1 }));
    assert.equal(textOnly.status, 200, textOnly.text);
    assert.ok(r.json.usage.prompt_tokens > textOnly.json.usage.prompt_tokens + 3 * 3, 'three images add their placeholder tokens');
    // Deterministic: the same interleaved request again gives the same answer.
    const again = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(parts, { max_tokens: 16 }));
    assert.equal(again.json.choices[0].message.content, r.json.choices[0].message.content);
  });

  test('curl-style raw requests give the same answer as the openai client', async () => {
    const body = chatBody(["What's in this image?", { url: images.url('/image.png') }], { max_tokens: 24 });
    const viaClient = await client.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const raw = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    assert.equal(raw.status, 200, raw.text);
    assert.match(raw.headers.get('content-type') ?? '', /application\/json/);
    // The SGLang response shape (sglang-conventions.md).
    const j = raw.json;
    assert.match(j.id, /\S/);
    assert.equal(j.object, 'chat.completion');
    assert.equal(typeof j.created, 'number');
    assert.equal(j.model, MODEL);
    for (const k of ['finish_reason', 'index', 'logprobs', 'matched_stop', 'message']) assert.ok(k in j.choices[0], `choices[0].${k}`);
    assert.equal(j.choices[0].message.role, 'assistant');
    assert.equal(j.choices[0].message.reasoning_content, null);
    assert.equal(j.choices[0].message.tool_calls, null);
    assert.equal(j.choices[0].logprobs, null);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(typeof j.usage[k], 'number', k);
    assert.equal(j.metadata?.weight_version, 'default');
    assert.equal(j.choices[0].message.content, viaClient.choices[0]!.message.content);
    assert.equal(j.usage.completion_tokens, viaClient.usage!.completion_tokens);
    if (j.choices[0].finish_reason === 'stop') assert.equal(typeof j.choices[0].matched_stop, 'number', 'EOS id as matched_stop');
  });

  test('curl -d without a Content-Type header (seed 003) is read as JSON, as SGLang does', async () => {
    // `curl -d '{...}'` sends Content-Type: application/x-www-form-urlencoded.
    const body = chatBody(["What's in this image?", { url: images.url('/image.png') }], { max_tokens: 4 });
    const res = await fetch(`${iris.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.equal(res.status, 200, `curl without -H "Content-Type: application/json" is refused: ${res.status} ${text}`);
    assert.equal(JSON.parse(text).object, 'chat.completion');
  });
});

describe('golden chat case over HTTP', () => {
  test('data URI, temperature 0, max_tokens 12, top_logprobs 5: usage, text and top-5 logprobs match the reference', async () => {
    const g = await goldenChatCase();
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', { model: MODEL, messages: g.messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 5 });
    assert.equal(r.status, 200, r.text);
    const c = r.json.choices[0];
    assert.equal(r.json.usage.prompt_tokens, g.expected.prompt_tokens);
    assert.equal(r.json.usage.completion_tokens, g.expected.completion_tokens);
    assert.equal(c.finish_reason, g.expected.finish_reason);
    assert.equal(c.matched_stop, null);
    assert.equal(c.message.content, g.expected.completion_text);
    assert.equal(c.logprobs.content.length, 12);
    g.expected.top_logprobs.forEach((step, i) => {
      const got = c.logprobs.content[i];
      assert.equal(got.top_logprobs.length, 5, `step ${i}`);
      step.forEach((e, j) => assert.ok(Math.abs(got.top_logprobs[j].logprob - e.logprob) < 1e-4, `step ${i} rank ${j}: ${got.top_logprobs[j].logprob} vs ${e.logprob}`));
      // Greedy: the chosen token is the likeliest one.
      assert.equal(got.logprob, got.top_logprobs[0].logprob, `step ${i}`);
      assert.equal(got.token, got.top_logprobs[0].token, `step ${i}`);
    });
  });

  test('/generate with the rendered prompt and the data URI gives the reference token ids and top-5 logprobs', async () => {
    const g = await goldenChatCase();
    const r = await postJson(iris.baseUrl, '/generate', {
      text: g.renderedPrompt,
      image_data: g.imageDataUri,
      sampling_params: { temperature: 0, max_new_tokens: 12 },
      return_logprob: true,
      top_logprobs_num: 5,
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.output_ids, g.expected.completion_token_ids);
    assert.equal(r.json.meta_info.prompt_tokens, g.expected.prompt_tokens);
    assert.equal(r.json.meta_info.completion_tokens, 12);
    assert.deepEqual(r.json.meta_info.finish_reason, { type: 'length', length: 12 });
    g.expected.top_logprobs.forEach((step, i) => {
      const got = r.json.meta_info.output_top_logprobs[i];
      step.forEach((e, j) => {
        assert.equal(got[j][1], e.id, `step ${i} rank ${j}`);
        assert.ok(Math.abs(got[j][0] - e.logprob) < 1e-4, `step ${i} rank ${j}`);
      });
      assert.equal(r.json.meta_info.output_token_logprobs[i][1], g.expected.completion_token_ids[i]);
    });
  });
});

/** Parses an SSE chat stream into its JSON chunks (the last event must be [DONE]). */
function chunksOf(events: string[]) {
  assert.ok(events.length >= 2, `too few events: ${JSON.stringify(events)}`);
  assert.equal(events.at(-1), '[DONE]', 'the stream ends with data: [DONE]');
  assert.equal(events.filter((e) => e === '[DONE]').length, 1);
  return events.slice(0, -1).map((e) => JSON.parse(e));
}

describe('streaming', () => {
  test('raw SSE: role first, content deltas, a finish_reason chunk, a usage chunk, then [DONE]; same text as non-streaming', async () => {
    const body = chatBody(['Describe this picture.', { url: images.url('/image.png') }], { max_tokens: 20 });
    const plain = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    assert.equal(plain.status, 200, plain.text);
    const res = await postStream(iris.baseUrl, '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const chunks = chunksOf(await readSse(res));
    const id = chunks[0].id;
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, id, 'one id for the whole stream');
      assert.equal(c.model, MODEL);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant', 'the first chunk carries the role');
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, [], 'the usage chunk has no choices');
    assert.deepEqual(
      { p: usageChunk.usage.prompt_tokens, c: usageChunk.usage.completion_tokens, t: usageChunk.usage.total_tokens },
      { p: plain.json.usage.prompt_tokens, c: plain.json.usage.completion_tokens, t: plain.json.usage.total_tokens },
    );
    const finishIdx = chunks.findIndex((c) => c.choices[0]?.finish_reason);
    assert.equal(finishIdx, chunks.length - 2, 'the finish_reason chunk comes right before the usage chunk');
    assert.equal(chunks[finishIdx].choices[0].finish_reason, plain.json.choices[0].finish_reason);
    for (const c of chunks.slice(1, finishIdx)) {
      assert.equal(c.choices.length, 1);
      assert.equal(c.choices[0].finish_reason, null);
      assert.equal(typeof c.choices[0].delta.content, 'string');
      assert.equal(c.choices[0].delta.role, undefined, 'only the first chunk has the role');
    }
    assert.ok(finishIdx >= 2, 'at least one content delta');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, plain.json.choices[0].message.content);
  });

  test('without include_usage there is no usage chunk', async () => {
    const res = await postStream(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 5, stream: true }));
    const chunks = chunksOf(await readSse(res));
    assert.ok(chunks.every((c) => !c.usage || c.choices.length > 0));
    assert.ok(chunks.at(-1).choices[0].finish_reason);
  });

  test('openai client stream: same text as non-streaming, usage last', async () => {
    const body = chatBody(['What is in this image?', { url: images.url('/image.jpg') }], { max_tokens: 20 }) as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const plain = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let first = true;
    for await (const chunk of stream) {
      if (first) {
        assert.equal(chunk.choices[0]?.delta.role, 'assistant');
        first = false;
      }
      assert.equal(usage, undefined, 'nothing after the usage chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? '';
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, plain.choices[0]!.message.content);
    assert.equal(finish, plain.choices[0]!.finish_reason);
    assert.equal(usage?.completion_tokens, plain.usage!.completion_tokens);
    assert.equal(usage?.prompt_tokens, plain.usage!.prompt_tokens);
  });

  test('streaming with logprobs: per-chunk logprobs add up to the non-streaming ones', async () => {
    const body = chatBody(['hi'], { max_tokens: 10, logprobs: true, top_logprobs: 2 });
    const plain = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    const chunks = chunksOf(await readSse(await postStream(iris.baseUrl, '/v1/chat/completions', { ...body, stream: true })));
    const lps = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    assert.deepEqual(
      lps.map((l: { token: string; logprob: number }) => [l.token, l.logprob]),
      plain.json.choices[0].logprobs.content.map((l: { token: string; logprob: number }) => [l.token, l.logprob]),
    );
  });
});

describe('sampling', () => {
  test('n = 3 at temperature 1 with a seed: three indexed choices, reproducible; at temperature 0 all equal', async () => {
    const body = chatBody(['Tell me a story about', { url: images.url('/image.png') }], { max_tokens: 12, n: 3, temperature: 1, seed: 1234 });
    const a = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json.choices.map((c: { index: number }) => c.index), [0, 1, 2]);
    const texts = a.json.choices.map((c: { message: { content: string } }) => c.message.content);
    assert.ok(new Set(texts).size >= 2, `sampled choices should differ: ${JSON.stringify(texts)}`);
    const b = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    assert.deepEqual(b.json.choices.map((c: { message: { content: string } }) => c.message.content), texts, 'same seed, same choices');
    assert.ok(a.json.usage.completion_tokens >= 3 && a.json.usage.completion_tokens <= 36, 'usage sums the choices');

    const g = await postJson(iris.baseUrl, '/v1/chat/completions', { ...body, temperature: 0 });
    assert.equal(g.status, 200, g.text);
    const gt = g.json.choices.map((c: { message: { content: string } }) => c.message.content);
    assert.equal(gt.length, 3);
    assert.ok(gt.every((t: string) => t === gt[0]), `greedy choices differ: ${JSON.stringify(gt)}`);
    const single = await postJson(iris.baseUrl, '/v1/chat/completions', { ...body, temperature: 0, n: 1 });
    assert.equal(single.json.choices[0].message.content, gt[0]);
    assert.equal(g.json.usage.completion_tokens, 3 * single.json.usage.completion_tokens);
    assert.equal(g.json.usage.prompt_tokens, single.json.usage.prompt_tokens);
  });

  test('n = 2 streaming: chunks of both choices, each with its own finish_reason', async () => {
    const chunks = chunksOf(await readSse(await postStream(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 6, n: 2, stream: true }))));
    const byIndex = [0, 1].map((i) => chunks.filter((c) => c.choices[0]?.index === i));
    for (const cs of byIndex) {
      assert.equal(cs[0].choices[0].delta.role, 'assistant');
      assert.equal(cs.filter((c) => c.choices[0].finish_reason).length, 1);
    }
    const texts = byIndex.map((cs) => cs.map((c) => c.choices[0].delta.content ?? '').join(''));
    assert.equal(texts[0], texts[1], 'greedy choices are equal');
  });

  test('a stop string from the greedy output: text ends before it, finish_reason stop, matched_stop is the string', async () => {
    const body = chatBody(['hi'], { max_tokens: 40 });
    const greedy = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    const text: string = greedy.json.choices[0].message.content;
    // A run of two or more plain ASCII characters in the middle of the gibberish.
    const m = /[A-Za-z0-9]{2,}/.exec(text.slice(3));
    assert.ok(m, `no ASCII run in ${JSON.stringify(text)}`);
    const stop = m[0];
    const at = text.indexOf(stop);
    assert.ok(at > 0);
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', { ...body, stop: [stop, 'never-in-output-zzz'] });
    assert.equal(r.status, 200, r.text);
    const c = r.json.choices[0];
    assert.equal(c.message.content, text.slice(0, at));
    assert.equal(c.finish_reason, 'stop');
    assert.equal(c.matched_stop, stop);
    assert.ok(r.json.usage.completion_tokens < greedy.json.usage.completion_tokens);
    // The same through the stream.
    const chunks = chunksOf(await readSse(await postStream(iris.baseUrl, '/v1/chat/completions', { ...body, stop, stream: true })));
    assert.equal(chunks.map((ch) => ch.choices[0]?.delta?.content ?? '').join(''), text.slice(0, at));
    const fin = chunks.find((ch) => ch.choices[0]?.finish_reason);
    assert.equal(fin.choices[0].finish_reason, 'stop');
    assert.equal(fin.choices[0].matched_stop, stop);
  });

  test('stop_token_ids and min_tokens (token ids from /generate on the same rendered prompt)', async () => {
    const gen = await postJson(iris.baseUrl, '/generate', { text: rendered('hi'), sampling_params: { temperature: 0, max_new_tokens: 40 } });
    assert.equal(gen.status, 200, gen.text);
    const ids: number[] = gen.json.output_ids;
    const chat = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 40 }));
    assert.equal(chat.json.usage.prompt_tokens, gen.json.meta_info.prompt_tokens, 'same prompt');
    assert.equal(chat.json.choices[0].message.content, gen.json.text, 'same greedy output');
    // A token at position >= 3 whose first occurrence is there.
    const k = ids.findIndex((t, i) => i >= 3 && ids.indexOf(t) === i);
    assert.ok(k >= 3, `no fresh token in ${ids}`);
    const stopId = ids[k]!;
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 40, stop_token_ids: [stopId] }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    assert.equal(r.json.choices[0].matched_stop, stopId);
    assert.equal(r.json.usage.completion_tokens, k + 1, 'generation stops at the stop token (counted)');
    // min_tokens keeps going past it.
    const m = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 40, stop_token_ids: [stopId], min_tokens: k + 2 }));
    assert.equal(m.status, 200, m.text);
    assert.ok(m.json.usage.completion_tokens >= k + 2, `min_tokens: ${m.json.usage.completion_tokens}`);
    // /generate: the same via sampling_params.
    const g2 = await postJson(iris.baseUrl, '/generate', { text: rendered('hi'), sampling_params: { temperature: 0, max_new_tokens: 40, stop_token_ids: [stopId] } });
    assert.deepEqual(g2.json.output_ids, ids.slice(0, k + 1));
    assert.deepEqual(g2.json.meta_info.finish_reason, { type: 'stop', matched: stopId });
  });

  test('min_tokens holds off EOS; ignore_eos runs to max_tokens', async () => {
    const free = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 200 }));
    assert.equal(free.status, 200, free.text);
    const c = free.json.choices[0];
    if (c.finish_reason === 'stop') {
      assert.equal(typeof c.matched_stop, 'number', 'EOS id');
      const n = free.json.usage.completion_tokens;
      const held = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: n + 20, min_tokens: n + 10 }));
      assert.ok(held.json.usage.completion_tokens >= n + 10, `${held.json.usage.completion_tokens} < ${n + 10}`);
    }
    const ign = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 150, ignore_eos: true }));
    assert.equal(ign.json.usage.completion_tokens, 150);
    assert.equal(ign.json.choices[0].finish_reason, 'length');
  });
});

describe('logprobs', () => {
  test('chat logprobs shape: token, logprob, bytes, top_logprobs of the asked length', async () => {
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['Describe', { url: images.url('/image.png') }], { max_tokens: 10, logprobs: true, top_logprobs: 3 }));
    assert.equal(r.status, 200, r.text);
    const content = r.json.choices[0].logprobs.content;
    assert.equal(content.length, r.json.usage.completion_tokens);
    for (const e of content) {
      assert.equal(typeof e.token, 'string');
      assert.equal(typeof e.logprob, 'number');
      assert.ok(e.logprob <= 0);
      assert.ok(Array.isArray(e.bytes) && e.bytes.length > 0);
      assert.ok(e.bytes.every((b: number) => Number.isInteger(b) && b >= 0 && b <= 255));
      assert.equal(e.top_logprobs.length, 3);
      for (let j = 1; j < 3; j++) assert.ok(e.top_logprobs[j - 1].logprob >= e.top_logprobs[j].logprob, 'sorted');
      for (const t of e.top_logprobs) {
        assert.equal(typeof t.token, 'string');
        assert.ok(Array.isArray(t.bytes));
      }
      assert.equal(e.top_logprobs[0].logprob, e.logprob, 'greedy picks the likeliest');
    }
    // The bytes of the tokens concatenate to the UTF-8 of the text when the text has no broken characters.
    const text: string = r.json.choices[0].message.content;
    const all = Buffer.from(content.flatMap((e: { bytes: number[] }) => e.bytes));
    if (!text.includes('\ufffd')) assert.equal(all.toString('utf8'), text);
  });

  test('logprobs without top_logprobs: empty top lists; no logprobs: null', async () => {
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 4, logprobs: true }));
    assert.equal(r.json.choices[0].logprobs.content.length, 4);
    assert.ok(r.json.choices[0].logprobs.content.every((e: { top_logprobs: unknown[] }) => Array.isArray(e.top_logprobs) && e.top_logprobs.length === 0));
    const n = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 4 }));
    assert.equal(n.json.choices[0].logprobs, null);
  });
});

describe('SGLang /generate and /v1/completions', () => {
  test('/generate image_data as URL, data URI, bare base64 and a list of two', async () => {
    const sp = { temperature: 0, max_new_tokens: 10 };
    const text = 'Describe the image.';
    const b64 = images.png.toString('base64');
    const byUrl = await postJson(iris.baseUrl, '/generate', { text, image_data: images.url('/image.png'), sampling_params: sp });
    const byData = await postJson(iris.baseUrl, '/generate', { text, image_data: `data:image/png;base64,${b64}`, sampling_params: sp });
    const byB64 = await postJson(iris.baseUrl, '/generate', { text, image_data: b64, sampling_params: sp });
    const noImage = await postJson(iris.baseUrl, '/generate', { text, sampling_params: sp });
    for (const r of [byUrl, byData, byB64, noImage]) assert.equal(r.status, 200, r.text);
    assert.deepEqual(byData.json.output_ids, byUrl.json.output_ids);
    assert.deepEqual(byB64.json.output_ids, byUrl.json.output_ids);
    assert.equal(byData.json.meta_info.prompt_tokens, byUrl.json.meta_info.prompt_tokens);
    assert.equal(byB64.json.meta_info.prompt_tokens, byUrl.json.meta_info.prompt_tokens);
    assert.ok(byUrl.json.meta_info.prompt_tokens > noImage.json.meta_info.prompt_tokens);
    assert.equal(byUrl.json.output_ids.length, 10);
    assert.equal(typeof byUrl.json.text, 'string');
    assert.deepEqual(byUrl.json.meta_info.finish_reason, { type: 'length', length: 10 });
    assert.equal(typeof byUrl.json.meta_info.id, 'string');

    const two = await postJson(iris.baseUrl, '/generate', { text, image_data: [images.url('/image.png'), `data:image/png;base64,${images.png2.toString('base64')}`], sampling_params: sp });
    assert.equal(two.status, 200, two.text);
    assert.ok(two.json.meta_info.prompt_tokens > byUrl.json.meta_info.prompt_tokens);
    // With explicit placeholders the images go where the text puts them.
    const placed = await postJson(iris.baseUrl, '/generate', { text: `<|vision_start|><|image_pad|><|vision_end|>${text}`, image_data: [b64], sampling_params: sp });
    assert.deepEqual(placed.json.output_ids, byUrl.json.output_ids);
  });

  test('/generate return_logprob + top_logprobs_num', async () => {
    const r = await postJson(iris.baseUrl, '/generate', { text: 'Hello', sampling_params: { temperature: 0, max_new_tokens: 6 }, return_logprob: true, top_logprobs_num: 4 });
    assert.equal(r.status, 200, r.text);
    const m = r.json.meta_info;
    assert.equal(m.output_token_logprobs.length, 6);
    m.output_token_logprobs.forEach((e: [number, number, unknown], i: number) => {
      assert.equal(typeof e[0], 'number');
      assert.equal(e[1], r.json.output_ids[i]);
    });
    assert.equal(m.output_top_logprobs.length, 6);
    for (const step of m.output_top_logprobs) assert.equal(step.length, 4);
    m.output_top_logprobs.forEach((step: Array<[number, number]>, i: number) => assert.equal(step[0]![1], r.json.output_ids[i]));
  });

  test('/generate stream: cumulative text events, the last with finish_reason, then [DONE]', async () => {
    const body = { text: 'Once upon a time', sampling_params: { temperature: 0, max_new_tokens: 12 } };
    const plain = await postJson(iris.baseUrl, '/generate', body);
    const events = await readSse(await postStream(iris.baseUrl, '/generate', { ...body, stream: true }));
    assert.equal(events.at(-1), '[DONE]');
    const objs = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(objs.length >= 2);
    for (let i = 1; i < objs.length; i++) {
      assert.ok(objs[i].text.startsWith(objs[i - 1].text), 'cumulative text');
      assert.ok(objs[i].output_ids.length >= objs[i - 1].output_ids.length, 'cumulative ids');
    }
    for (const o of objs.slice(0, -1)) assert.equal(o.meta_info.finish_reason, null);
    const last = objs.at(-1);
    assert.deepEqual(last.meta_info.finish_reason, { type: 'length', length: 12 });
    assert.equal(last.text, plain.json.text);
    assert.deepEqual(last.output_ids, plain.json.output_ids);
  });

  test('/v1/completions with a text prompt and with the same prompt as token ids', async () => {
    const { TextTokenizer } = await import('../../src/tokenizer/tokenizer.js');
    const { MODEL_PATH } = await import('../helpers/server.js');
    const tok = TextTokenizer.load(MODEL_PATH);
    const prompt = 'The quick brown fox';
    const ids = tok.encode(prompt);
    const byText = await postJson(iris.baseUrl, '/v1/completions', { model: MODEL, prompt, max_tokens: 10, temperature: 0 });
    assert.equal(byText.status, 200, byText.text);
    assert.equal(byText.json.object, 'text_completion');
    assert.equal(byText.json.choices[0].index, 0);
    assert.equal(typeof byText.json.choices[0].text, 'string');
    assert.equal(byText.json.usage.prompt_tokens, ids.length);
    const byIds = await postJson(iris.baseUrl, '/v1/completions', { model: MODEL, prompt: ids, max_tokens: 10, temperature: 0 });
    assert.equal(byIds.status, 200, byIds.text);
    assert.equal(byIds.json.choices[0].text, byText.json.choices[0].text);
    assert.equal(byIds.json.usage.completion_tokens, byText.json.usage.completion_tokens);
    // The legacy logprobs shape.
    const lp = await postJson(iris.baseUrl, '/v1/completions', { prompt, max_tokens: 5, temperature: 0, logprobs: 2 });
    const l = lp.json.choices[0].logprobs;
    assert.equal(l.tokens.length, 5);
    assert.equal(l.token_logprobs.length, 5);
    assert.equal(l.top_logprobs.length, 5);
    assert.ok(l.top_logprobs.every((t: object) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2));
    assert.deepEqual(l.text_offset[0], 0);
    // Two prompts: two choices.
    const two = await postJson(iris.baseUrl, '/v1/completions', { prompt: [prompt, 'Hello'], max_tokens: 3, temperature: 0 });
    assert.equal(two.json.choices.length, 2);
    assert.equal(two.json.choices[0].text, (await postJson(iris.baseUrl, '/v1/completions', { prompt, max_tokens: 3, temperature: 0 })).json.choices[0].text);
    // Via the openai client, streamed.
    const s = await client.completions.create({ model: MODEL, prompt, max_tokens: 10, temperature: 0, stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    assert.equal(text, byText.json.choices[0].text);
  });
});

describe('health, info and metrics', () => {
  test('/health and /health_generate answer 200', async () => {
    const h = await fetch(`${iris.baseUrl}/health`);
    assert.equal(h.status, 200);
    await h.text();
    const hg = await fetch(`${iris.baseUrl}/health_generate`);
    assert.equal(hg.status, 200);
    await hg.text();
  });

  test('/get_model_info', async () => {
    const r = await getJson(iris.baseUrl, '/get_model_info');
    assert.equal(r.status, 200);
    assert.equal(r.json.served_model_name, MODEL);
    assert.equal(r.json.is_generation, true);
    assert.equal(r.json.has_image_understanding, true);
    assert.equal(r.json.model_type, 'qwen2_5_vl');
    assert.deepEqual(r.json.architectures, ['Qwen2_5_VLForConditionalGeneration']);
    assert.equal(r.json.context_length, 4096);
    assert.match(r.json.model_path, /qwen2_5_vl\/model$/);
  });

  test('/get_server_info reports the model, limits, KV cache and the port it listens on', async () => {
    const r = await getJson(iris.baseUrl, '/get_server_info');
    assert.equal(r.status, 200);
    const j = r.json;
    assert.equal(j.served_model_name, MODEL);
    assert.equal(j.context_length, 4096);
    assert.equal(typeof j.max_total_num_tokens, 'number');
    assert.equal(j.num_running_reqs, 0);
    assert.equal(j.num_queued_reqs, 0);
    assert.equal(typeof j.kv_cache.total_pages, 'number');
    assert.equal(j.kv_cache.used_pages, 0);
    assert.equal(j.host, '127.0.0.1');
    assert.equal(j.port, iris.port, 'started with --port 0: the port reported must be the one actually bound');
  });

  test('/metrics: Prometheus text with iris_requests_total and the TTFT histogram, counting a request', async () => {
    const scrape = async () => {
      const res = await fetch(`${iris.baseUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
      return res.text();
    };
    const value = (text: string, re: RegExp) => {
      const m = re.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const reqRe = /^iris_requests_total\{route="\/v1\/chat\/completions",status="200"\} (\d+)/m;
    const ttftRe = /^iris_time_to_first_token_seconds_count (\d+)/m;
    const genRe = /^iris_generation_tokens_total (\d+)/m;
    const before = await scrape();
    assert.match(before, /# TYPE iris_requests_total counter/);
    assert.match(before, /# TYPE iris_time_to_first_token_seconds histogram/);
    assert.match(before, /iris_time_to_first_token_seconds_bucket\{le="\+Inf"\}/);
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 7, ignore_eos: true }));
    assert.equal(r.status, 200);
    let after = '';
    for (let i = 0; i < 40; i++) {
      after = await scrape();
      if (value(after, reqRe) > value(before, reqRe)) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    assert.equal(value(after, reqRe) - value(before, reqRe), 1, 'one more chat request counted');
    assert.equal(value(after, ttftRe) - value(before, ttftRe), 1, 'one more TTFT observation');
    assert.equal(value(after, genRe) - value(before, genRe), 7, 'seven more generated tokens');
  });
});
