/**
 * What the Hub refuses becomes a ModelLoadError naming the repo and the way out: unknown
 * repo or revision, gated repos without (or with a bad) token, repos without safetensors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IrisError } from '../../src/errors.js';
import { resolveModelPath, ResolveOptions } from '../../src/hub/index.js';
import { FakeHub, hubEnv, startFakeHub, writeTinyRepo } from '../helpers/fakeHub.js';

let hub: FakeHub;
let root: string;
const TOKEN = 'hf_gated_test_token';

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-hub-err-'));
  hub.addRepo({ id: 'org/open', dir: writeTinyRepo(join(root, 'open-src'), { sharded: false, shardFloats: 64 }) });
  hub.addRepo({ id: 'org/gated', dir: writeTinyRepo(join(root, 'gated-src'), { sharded: false, shardFloats: 64 }), gatedToken: TOKEN });
  hub.addRepo({ id: 'org/pytorch-only', dir: writeTinyRepo(join(root, 'pt-src'), { noSafetensors: true }) });
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

/** resolveModelPath must reject with a ModelLoadError whose message matches every pattern. */
async function assertFails(arg: string, opts: ResolveOptions, ...patterns: RegExp[]): Promise<string> {
  try {
    await resolveModelPath(arg, opts);
  } catch (e) {
    assert.ok(e instanceof IrisError, `expected an IrisError, got ${String(e)}`);
    assert.equal(e.type, 'ModelLoadError', e.message);
    for (const p of patterns) assert.match(e.message, p);
    return e.message;
  }
  assert.fail(`resolveModelPath(${arg}) succeeded`);
}

const env = (extra: NodeJS.ProcessEnv = {}) => hubEnv(hub.url, root, extra);

describe('errors from the Hub', () => {
  test('an unknown repo is named as not found', async () => {
    await assertFails('org/no-such-model', { env: env() }, /org\/no-such-model not found on the Hub/, new RegExp(hub.url.replace(/[.]/g, '\\.')));
  });

  test('an unknown revision is named with the repo', async () => {
    await assertFails('org/open', { env: env(), revision: 'no-such-branch' }, /revision "no-such-branch" not found in org\/open/);
    assert.ok(!existsSync(join(root, 'cache', 'models--org--open', 'refs', 'no-such-branch')));
  });

  test('a revision that would leave refs/ is refused before any request', async () => {
    const before = hub.requests.length;
    await assertFails('org/open', { env: env(), revision: '../../escape' }, /invalid revision "\.\.\/\.\.\/escape" for org\/open/);
    assert.equal(hub.requests.length, before);
  });

  test('a gated repo without a token says to set HF_TOKEN or log in', async () => {
    await assertFails('org/gated', { env: env() }, /org\/gated needs authentication/, /HF_TOKEN/, /hf auth login/);
    assert.ok(!hub.downloads({ repo: 'org/gated' }).length, 'nothing downloaded');
  });

  test('a gated repo with a wrong token says the token was refused', async () => {
    await assertFails('org/gated', { env: env({ HF_TOKEN: 'hf_wrong' }) }, /org\/gated: the Hub refused the token/, /HF_TOKEN/);
  });

  test('a gated repo downloads with HF_TOKEN; the token goes with every Hub request', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath('org/gated', { env: env({ HF_TOKEN: TOKEN }) });
    assert.equal(r.source, 'download');
    assert.ok(readdirSync(r.dir).includes('model.safetensors'));
    const hubRequests = hub.requests.slice(before).filter((q) => q.kind !== 'cdn');
    assert.ok(hubRequests.length > 3);
    for (const q of hubRequests) assert.equal(q.authorization, `Bearer ${TOKEN}`, q.url);
  });

  test('a gated repo downloads with the token file in HF_HOME', async () => {
    const home = join(root, 'token-home');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'token'), `${TOKEN}\n`);
    const r = await resolveModelPath('org/gated', { env: env({ HF_HOME: home, HF_HUB_CACHE: join(root, 'cache-token-file') }) });
    assert.equal(r.source, 'download');
  });

  test('HF_TOKEN_PATH points at another token file', async () => {
    const file = join(root, 'elsewhere-token');
    writeFileSync(file, TOKEN);
    const r = await resolveModelPath('org/gated', { env: env({ HF_TOKEN_PATH: file, HF_HUB_CACHE: join(root, 'cache-token-path') }) });
    assert.equal(r.source, 'download');
  });

  test('a repo without safetensors names the weight files it has, before downloading anything', async () => {
    const before = hub.downloads({ repo: 'org/pytorch-only' }).length;
    await assertFails('org/pytorch-only', { env: env() }, /org\/pytorch-only has no model\.safetensors/, /pytorch_model\.bin/, /Iris reads \*\.safetensors/);
    assert.equal(hub.downloads({ repo: 'org/pytorch-only' }).length, before);
  });
});
