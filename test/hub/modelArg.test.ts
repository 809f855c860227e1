/**
 * What a --model-path argument names: an existing folder as is, a path-looking argument that
 * does not exist as an error, anything else shaped like ORG/NAME as a Hub repo.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelLoadError } from '../../src/errors.js';
import { isRepoId, resolveModelPath } from '../../src/hub/index.js';
import { classifyModelArg } from '../../src/hub/modelArg.js';

const root = mkdtempSync(join(tmpdir(), 'iris-hub-arg-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('an existing folder is returned as is, without any Hub setting being read', async () => {
  const dir = join(root, 'org', 'name');
  mkdirSync(dir, { recursive: true });
  // An endpoint nobody listens on and offline mode: neither must matter for a folder.
  const r = await resolveModelPath(dir, { env: { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '1' } });
  assert.deepEqual(r, { dir, source: 'folder' });
});

test('a relative folder that exists wins over the Hub id of the same spelling', () => {
  const cwd = process.cwd();
  process.chdir(root);
  try {
    assert.deepEqual(classifyModelArg('org/name'), { kind: 'folder', dir: 'org/name' });
    assert.deepEqual(classifyModelArg('org/other'), { kind: 'repo', repo: 'org/other' });
  } finally {
    process.chdir(cwd);
  }
});

test('a path that does not exist is an error naming it, never a Hub lookup', () => {
  for (const p of ['./missing-model', '../missing-model', '/no/such/model/dir', '~/no-such-model-dir']) {
    assert.throws(() => classifyModelArg(p), (e: unknown) => e instanceof ModelLoadError && e.message.startsWith(`model folder not found: ${p}`), p);
  }
});

test('a file is not a model folder', () => {
  const f = join(root, 'config.json');
  writeFileSync(f, '{}');
  assert.throws(() => classifyModelArg(f), /is a file; expected a model folder or a Hub model id/);
});

test('Hub ids follow huggingface_hub rules', () => {
  for (const ok of ['Qwen/Qwen2-VL-2B-Instruct', 'gpt2', 'org_1/model.v2', 'a/b-c_d.e']) assert.ok(isRepoId(ok), ok);
  for (const bad of ['a/b/c', 'org--x/name', 'org/na..me', '-org/name', 'org/name-', 'org /name', `${'x'.repeat(97)}`, '']) {
    assert.ok(!isRepoId(bad), bad);
  }
  assert.throws(() => classifyModelArg('a/b/c'), /neither an existing folder nor a Hub model id/);
});
