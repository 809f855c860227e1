import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { IrisServer, assertError, chatBody, getJson, postJson, postStream, readSse, readUntilEvents, startIris, waitFor } from '../helpers/server.js';

/**
 * API keys, admission (503 + Retry-After when full) and client disconnects.
 * Servers: --api-key secret; --max-running-requests 1 with --max-queued-requests 0 and 1.
 */

const KEY = 'secret';
const AUTH = { authorization: `Bearer ${KEY}` };
let keyed: IrisServer;
/** --max-running-requests 1 --max-queued-requests 0 */
let full0: IrisServer;
/** --max-running-requests 1 --max-queued-requests 1 */
let full1: IrisServer;

before(async () => {
  [keyed, full0, full1] = await Promise.all([
    startIris(['--api-key', KEY]),
    startIris(['--max-running-requests', '1', '--max-queued-requests', '0']),
    startIris(['--max-running-requests', '1', '--max-queued-requests', '1']),
  ]);
});

after(async () => {
  await Promise.all([keyed?.stop(), full0?.stop(), full1?.stop()]);
});

/** A long greedy stream (EOS ignored) on `server`; resolves once its first content chunk arrived. */
async function startLongStream(server: IrisServer, headers: Record<string, string> = {}, maxTokens = 4000) {
  const ac = new AbortController();
  const res = await postStream(server.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: maxTokens, ignore_eos: true, stream: true }), { headers, signal: ac.signal });
  if (res.status !== 200) {
    const text = await res.text();
    return { ac, res, status: res.status, text, events: [] as string[], rest: Promise.resolve([] as string[]) };
  }
  const reader = res.body!.getReader();
  // Read until two events (role chunk + first content chunk) have arrived.
  const buf = await readUntilEvents(reader, 2);
  const events = buf.split('\n\n').filter((b) => b.startsWith('data:'));
  // A refusal after the SSE headers arrives as an error event with HTTP 200: report it as such.
  const errorEvent = events.find((e) => e.includes('"object":"error"'));
  if (errorEvent) {
    await reader.cancel().catch(() => undefined);
    return { ac, res, status: JSON.parse(errorEvent.slice(5)).code as number, text: `HTTP 200, then the SSE event ${errorEvent}`, events, rest: Promise.resolve([] as string[]) };
  }
  const rest = (async () => {
    const decoder = new TextDecoder();
    const more: string[] = [];
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        more.push(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted
    }
    return more;
  })();
  return { ac, res, status: 200, text: '', events, rest };
}

const serverInfo = async (s: IrisServer, headers: Record<string, string> = {}) => (await getJson(s.baseUrl, '/get_server_info', headers)).json;

const idle = (s: IrisServer, headers: Record<string, string> = {}) => async () => {
  const j = await serverInfo(s, headers);
  return j.num_running_reqs === 0 && j.num_queued_reqs === 0 && j.kv_cache.used_pages === 0 && j.in_flight_http_requests === 0 ? j : null;
};

describe('--api-key', () => {
  test('missing key -> 401, wrong key -> 401, right key -> 200', async () => {
    const body = chatBody(['hi'], { max_tokens: 2 });
    const missing = await postJson(keyed.baseUrl, '/v1/chat/completions', body);
    assertError(missing, 401, ['missing']);
    assert.equal(missing.json.type, 'AuthenticationError');
    const wrong = await postJson(keyed.baseUrl, '/v1/chat/completions', body, { headers: { authorization: 'Bearer nope' } });
    assertError(wrong, 401, ['invalid']);
    const wrongLen = await postJson(keyed.baseUrl, '/v1/chat/completions', body, { headers: { authorization: `Bearer ${KEY}x` } });
    assertError(wrongLen, 401);
    const notBearer = await postJson(keyed.baseUrl, '/v1/chat/completions', body, { headers: { authorization: `Basic ${KEY}` } });
    assertError(notBearer, 401);
    const right = await postJson(keyed.baseUrl, '/v1/chat/completions', body, { headers: AUTH });
    assert.equal(right.status, 200, right.text);
    assert.equal(right.json.usage.completion_tokens, 2);
  });

  test('every route but /health, /health_generate and /metrics needs the key', async () => {
    for (const path of ['/v1/models', '/get_model_info', '/get_server_info']) {
      assertError(await getJson(keyed.baseUrl, path), 401, [], path);
      const ok = await getJson(keyed.baseUrl, path, AUTH);
      assert.equal(ok.status, 200, path);
    }
    for (const path of ['/generate', '/v1/completions']) {
      const body = path === '/generate' ? { text: 'hi', sampling_params: { max_new_tokens: 2 } } : { prompt: 'hi', max_tokens: 2 };
      assertError(await postJson(keyed.baseUrl, path, body), 401, [], path);
      assert.equal((await postJson(keyed.baseUrl, path, body, { headers: AUTH })).status, 200, path);
    }
    for (const path of ['/health', '/health_generate', '/health?probe=1', '/metrics']) {
      const r = await fetch(`${keyed.baseUrl}${path}`);
      await r.text();
      assert.equal(r.status, 200, `${path} is open without a key`);
    }
  });

  test('the openai client with the right key works; with a wrong one it gets AuthenticationError', async () => {
    const ok = new OpenAI({ baseURL: `${keyed.baseUrl}/v1`, apiKey: KEY, maxRetries: 0 });
    const r = await ok.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(r.usage!.completion_tokens, 2);
    const bad = new OpenAI({ baseURL: `${keyed.baseUrl}/v1`, apiKey: 'None', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  });
});

describe('client disconnects', () => {
  test('aborting a stream mid-way frees the engine slot and the KV cache at once', async () => {
    const genRe = /^iris_generation_tokens_total (\d+)/m;
    const tokensBefore = Number(genRe.exec(await (await fetch(`${keyed.baseUrl}/metrics`, { headers: AUTH })).text())?.[1] ?? 0);
    const s = await startLongStream(keyed, AUTH);
    assert.equal(s.status, 200, s.text);
    assert.ok(s.events.length >= 2);
    const during = await serverInfo(keyed, AUTH);
    assert.equal(during.num_running_reqs, 1, 'the stream is running');
    assert.ok(during.kv_cache.used_pages > 0, 'and holds KV pages');
    const t0 = Date.now();
    s.ac.abort();
    await s.rest;
    const after = await waitFor(idle(keyed, AUTH), 3000);
    const ms = Date.now() - t0;
    assert.ok(after, `still busy 2 s after the client left: ${JSON.stringify(await serverInfo(keyed, AUTH))}`);
    assert.ok(ms < 2000, `freed after ${ms} ms`);
    const tokensAfter = Number(genRe.exec(await (await fetch(`${keyed.baseUrl}/metrics`, { headers: AUTH })).text())?.[1] ?? 0);
    assert.ok(tokensAfter - tokensBefore < 3000, `generation went on after the disconnect: ${tokensAfter - tokensBefore} tokens`);
    // And the server serves the next one.
    const r = await postJson(keyed.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 3 }), { headers: AUTH });
    assert.equal(r.status, 200, r.text);
  });

  test('aborting a non-streaming request frees it too', async () => {
    const ac = new AbortController();
    const p = postJson(keyed.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 4000, ignore_eos: true }), { headers: AUTH, signal: ac.signal }).catch((e: Error) => e);
    const running = await waitFor(async () => (await serverInfo(keyed, AUTH)).num_running_reqs === 1, 2000, 10);
    assert.ok(running, 'the request started');
    const t0 = Date.now();
    ac.abort();
    assert.ok((await p) instanceof Error);
    const after = await waitFor(idle(keyed, AUTH), 2000);
    assert.ok(after, `still busy after the client left: ${JSON.stringify(await serverInfo(keyed, AUTH))}`);
    assert.ok(Date.now() - t0 < 2000, `freed after ${Date.now() - t0} ms`);
  });
});

describe('isolation', () => {
  test('a bad request (a token id outside the vocabulary) does not break a request running next to it', async () => {
    const s = await startLongStream(keyed, AUTH, 1500);
    assert.equal(s.status, 200, s.text);
    // A one-token prompt goes straight into the batched decode step, next to the running stream.
    const bad = await postJson(keyed.baseUrl, '/generate', { input_ids: [99_999], sampling_params: { max_new_tokens: 2 } }, { headers: AUTH });
    assert.ok(bad.status === 400 || bad.status >= 500, bad.text);
    const rest = (await s.rest).join('');
    const events = [...s.events, ...rest.split('\n\n').filter((b) => b.startsWith('data:'))].map((b) => b.slice(5).trim());
    const errorEvent = events.find((e) => e.includes('"object":"error"'));
    assert.equal(errorEvent, undefined, `the innocent stream was failed by the other request: ${errorEvent}`);
    assert.equal(events.at(-1), '[DONE]');
    const fin = events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e)).find((c) => c.choices[0]?.finish_reason);
    assert.equal(fin?.choices[0].finish_reason, 'length');
    assert.equal(bad.status, 400, `an out-of-vocabulary id is the client's fault: ${bad.text}`);
  });
});

describe('admission: 503 with Retry-After when full', () => {
  test('--max-running-requests 1 --max-queued-requests 0: a long request runs, a concurrent one gets 503', async () => {
    const long = await startLongStream(full0);
    try {
      assert.equal(long.status, 200, `an idle server refused the first request: ${long.text}`);
      const second = await postJson(full0.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 2 }));
      assertError(second, 503, []);
      assert.equal(second.json.type, 'ServiceUnavailableError');
      assert.match(second.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After header');
    } finally {
      long.ac.abort();
      await long.rest;
    }
    assert.ok(await waitFor(idle(full0), 2000), 'the slot is freed');
    const again = await postJson(full0.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 2 }));
    assert.equal(again.status, 200, `once free, a request succeeds: ${again.text}`);
  });

  test('--max-running-requests 1 --max-queued-requests 1: one runs, one waits, the third gets 503; then all is well', async () => {
    const a = await startLongStream(full1);
    assert.equal(a.status, 200, a.text);
    const b = postStream(full1.baseUrl, '/v1/chat/completions', chatBody(['hello'], { max_tokens: 5, stream: true }));
    try {
      const queued = await waitFor(async () => (await serverInfo(full1)).num_queued_reqs === 1, 2000, 10);
      assert.ok(queued, `the second request waits: ${JSON.stringify(await serverInfo(full1))}`);
      const c = await postJson(full1.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 2 }));
      assertError(c, 503, ['retry']);
      assert.equal(c.headers.get('retry-after'), '1');
      // The waiting one runs once the first is gone.
      a.ac.abort();
      await a.rest;
      const bEvents = await readSse(await b);
      assert.equal(bEvents.at(-1), '[DONE]');
      const fin = bEvents.slice(0, -1).map((e) => JSON.parse(e)).find((c) => c.choices[0]?.finish_reason);
      assert.equal(fin.choices[0].finish_reason, 'length');
    } finally {
      a.ac.abort();
    }
    assert.ok(await waitFor(idle(full1), 2000));
    assert.equal((await postJson(full1.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 2 }))).status, 200);
  });

  test('one request with n = 3 on an idle --max-running-requests 1 --max-queued-requests 1 server is served', async () => {
    // Admission counts HTTP requests (1 of 2 allowed); its n choices must not be refused by the engine queue.
    assert.ok(await waitFor(idle(full1), 2000));
    const r = await postJson(full1.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 50, ignore_eos: true, n: 3 }));
    assert.equal(r.status, 200, `an idle server refused one request with n = 3: ${r.text}`);
    assert.equal(r.json.choices.length, 3);
  });

  test('/health stays 200 while the server is full', async () => {
    const a = await startLongStream(full1);
    try {
      const h = await fetch(`${full1.baseUrl}/health`);
      await h.text();
      assert.equal(h.status, 200);
    } finally {
      a.ac.abort();
      await a.rest;
    }
    assert.ok(await waitFor(idle(full1), 2000));
  });
});
