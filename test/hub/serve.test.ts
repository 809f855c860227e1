/**
 * The seed's command shape: `iris serve --model-path ORG/NAME`, the model downloaded from a
 * (stand-in) Hub into the huggingface_hub cache, served under the name the user passed, then
 * served again from the cache with the Hub out of reach.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FakeHub, hubEnv, startFakeHub } from '../helpers/fakeHub.js';
import { fixturePath } from '../helpers/paths.js';
import { getJson, postJson, startIris } from '../helpers/server.js';

const ID = 'Qwen/Qwen2.5-VL-tiny-Instruct';
let hub: FakeHub;
let root: string;

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-hub-serve-'));
  hub.addRepo({ id: ID, dir: fixturePath('golden/qwen2_5_vl/model') });
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, ...hubEnv(hub.url, root, extra) });
const ask = { messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 6, temperature: 0 };

test('iris serve --model-path ORG/NAME downloads, serves under that name, and serves again offline from the cache', async () => {
  const first = await startIris(['--log-level', 'warning'], { modelPath: ID, env: env() });
  let answer: string;
  try {
    const models = await getJson(first.baseUrl, '/v1/models');
    assert.equal(models.json.data[0].id, ID);
    const r = await postJson(first.baseUrl, '/v1/chat/completions', ask);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.model, ID);
    answer = r.json.choices[0].message.content;
    const info = await getJson(first.baseUrl, '/get_server_info');
    assert.equal(info.json.model_path, ID);
    assert.equal(info.json.quantization, 'none');
    assert.match(info.json.memory_plan, /float32 weights/);
    assert.ok(hub.downloads({ repo: ID, file: 'model.safetensors' }).length === 1, 'weights downloaded once');
  } finally {
    await first.stop();
  }
  const before = hub.requests.length;
  const offline = await startIris([], { modelPath: ID, env: env({ HF_HUB_OFFLINE: '1' }) });
  try {
    const r = await postJson(offline.baseUrl, '/v1/chat/completions', ask);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, answer, 'same model, same answer');
    assert.equal(hub.requests.length, before, 'offline: no request reached the Hub');
  } finally {
    await offline.stop();
  }
});

test('an unknown Hub repo is a one-line error naming it, without a stack trace', async () => {
  await assert.rejects(startIris([], { modelPath: 'nobody/no-such-model', env: env() }), (e: Error) => {
    assert.match(e.message, /nobody\/no-such-model/);
    assert.doesNotMatch(e.message, /\n\s+at /, 'no stack trace');
    return true;
  });
});
