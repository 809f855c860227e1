import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { IrisServer, chatBody, freshGet, getJson, postJson, postStream, readUntilEvents, waitFor, startIris } from '../helpers/server.js';

/**
 * SIGTERM: in-flight requests finish, new connections are refused, the process exits 0;
 * with a short --shutdown-grace-period a very long request is cut and the process still exits 0.
 */

let graceful: IrisServer;
/** --shutdown-grace-period 1 */
let hasty: IrisServer;

before(async () => {
  [graceful, hasty] = await Promise.all([startIris(), startIris(['--shutdown-grace-period', '1'])]);
});

after(async () => {
  await Promise.all([graceful?.stop(), hasty?.stop()]);
});

/** Reads an SSE body to its end; returns the data payloads. */
async function drain(res: Response, reader = res.body!.getReader(), prefix = ''): Promise<string[]> {
  const decoder = new TextDecoder();
  let buf = prefix;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
    }
  } catch {
    // the connection went away
  }
  return buf
    .split('\n\n')
    .filter((b) => b.startsWith('data:'))
    .map((b) => b.slice(5).trim());
}

/** Starts a stream and reads until its first content chunk; returns the reader and what was read. */
async function streamStarted(server: IrisServer, maxTokens: number) {
  const res = await postStream(server.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: maxTokens, ignore_eos: true, stream: true }));
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const buf = await readUntilEvents(reader, 2);
  assert.ok(!buf.includes('"object":"error"'), buf);
  return { res, reader, buf };
}

test('SIGTERM: in-flight requests complete normally, new connections are refused, exit code 0', async () => {
  const N = 600;
  // A non-streaming and a streaming request, both in flight.
  const plain = postJson(graceful.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: N, ignore_eos: true }));
  const s = await streamStarted(graceful, N);
  const both = await waitFor(async () => (await getJson(graceful.baseUrl, '/get_server_info')).json.in_flight_http_requests === 2, 3000, 10);
  assert.ok(both, 'two requests in flight');

  const t0 = Date.now();
  graceful.child.kill('SIGTERM');

  // New connections are refused while the two finish.
  let refusedAt = 0;
  const refused = await waitFor(async () => {
    try {
      await freshGet(`${graceful.baseUrl}/health`, 500);
      return false;
    } catch (e) {
      refusedAt = Date.now();
      return (e as NodeJS.ErrnoException).code === 'ECONNREFUSED';
    }
  }, 3000, 20);
  assert.ok(refused, 'a new connection after SIGTERM is refused');

  const r = await plain;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].finish_reason, 'length');
  assert.equal(r.json.usage.completion_tokens, N);
  assert.ok(refusedAt - t0 < 2000, `refused ${refusedAt - t0} ms after SIGTERM`);

  const events = await drain(s.res, s.reader, s.buf);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'), 'no error event');
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'length');

  const exit = await Promise.race([graceful.exited, new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
  assert.ok(exit, 'the process exited');
  assert.deepEqual(exit, { code: 0, signal: null });
});

test('SIGTERM with --shutdown-grace-period 1 and a very long request: the stream is ended and the process exits 0 within a few seconds', async () => {
  const s = await streamStarted(hasty, 4000);
  const t0 = Date.now();
  hasty.child.kill('SIGTERM');
  const exit = await Promise.race([hasty.exited, new Promise<null>((res) => setTimeout(() => res(null), 8000))]);
  const ms = Date.now() - t0;
  assert.ok(exit, `still running ${ms} ms after SIGTERM`);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(ms < 5000, `exited after ${ms} ms`);
  assert.ok(ms >= 900, `exited after ${ms} ms, before the 1 s grace period was over`);
  // The client is not left hanging: the stream ended (cut with finish_reason "abort", or closed).
  const events = await Promise.race([drain(s.res, s.reader, s.buf), new Promise<null>((res) => setTimeout(() => res(null), 3000))]);
  assert.ok(events, 'the stream ended');
  const fin = events
    .filter((e) => e !== '[DONE]')
    .map((e) => JSON.parse(e))
    .find((c) => c.choices?.[0]?.finish_reason);
  if (fin) assert.equal(fin.choices[0].finish_reason, 'abort');
});
