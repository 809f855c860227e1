/**
 * The cache is shared with Python's huggingface_hub: a snapshot it wrote is found (online,
 * offline, and when the Hub cannot be reached), and HF_HUB_OFFLINE never touches the network.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IrisError } from '../../src/errors.js';
import { resolveModelPath, ResolveOptions } from '../../src/hub/index.js';
import { FakeHub, FakeRepo, hubEnv, startFakeHub, TINY_WANTED, writeTinyRepo } from '../helpers/fakeHub.js';

let hub: FakeHub;
let root: string;
let repo: FakeRepo;
let closedPortUrl: string;
let silent: NetServer;
let silentUrl: string;
const sockets = new Set<Socket>();

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-hub-cache-'));
  repo = hub.addRepo({ id: 'py-org/py-model', dir: writeTinyRepo(join(root, 'src')) });
  // A port nothing listens on: connections are refused at once.
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  closedPortUrl = `http://127.0.0.1:${(probe.address() as { port: number }).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
  // A server that accepts connections and never answers: only the timeout ends a request.
  silent = createNetServer((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => silent.close(() => r()));
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

/** Lays out `files` of `repo` in cacheDir exactly as Python's hf_hub_download would. */
function writePythonCache(cacheDir: string, files: string[], refs = ['main']): string {
  const storage = join(cacheDir, `models--${repo.id.replace('/', '--')}`);
  mkdirSync(join(storage, 'blobs'), { recursive: true });
  mkdirSync(join(storage, 'refs'), { recursive: true });
  mkdirSync(join(storage, 'snapshots', repo.commit), { recursive: true });
  for (const f of files) {
    writeFileSync(join(storage, 'blobs', repo.etag(f)), repo.files.get(f)!.data);
    symlinkSync(`../../blobs/${repo.etag(f)}`, join(storage, 'snapshots', repo.commit, f));
  }
  for (const r of refs) writeFileSync(join(storage, 'refs', r), repo.commit);
  return join(storage, 'snapshots', repo.commit);
}

async function failure(arg: string, opts: ResolveOptions): Promise<string> {
  try {
    await resolveModelPath(arg, opts);
  } catch (e) {
    assert.ok(e instanceof IrisError && e.type === 'ModelLoadError', `expected a ModelLoadError, got ${String(e)}`);
    return e.message;
  }
  assert.fail(`resolveModelPath(${arg}) succeeded`);
}

describe('a cache shared with huggingface_hub', () => {
  const pyCache = () => join(root, 'py-cache');
  before(() => writePythonCache(pyCache(), TINY_WANTED));

  test('a snapshot Python downloaded is found online, with no file downloaded', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath(repo.id, { env: hubEnv(hub.url, root, { HF_HUB_CACHE: pyCache() }) });
    assert.equal(r.source, 'cache');
    assert.equal(r.dir, join(pyCache(), 'models--py-org--py-model', 'snapshots', repo.commit));
    assert.equal(hub.requests.slice(before).filter((q) => q.kind !== 'api').length, 0);
  });

  test('the cache folder comes from HF_HOME when HF_HUB_CACHE is unset', async () => {
    const home = join(root, 'hf-home-x');
    writePythonCache(join(home, 'hub'), TINY_WANTED);
    const env = hubEnv(hub.url, root, { HF_HOME: home, HF_HUB_OFFLINE: '1' });
    delete env.HF_HUB_CACHE;
    const r = await resolveModelPath(repo.id, { env });
    assert.equal(r.dir, join(home, 'hub', 'models--py-org--py-model', 'snapshots', repo.commit));
  });

  test('HF_HUB_OFFLINE=1 uses the cache without a single request', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath(repo.id, { env: hubEnv(hub.url, root, { HF_HUB_CACHE: pyCache(), HF_HUB_OFFLINE: '1' }) });
    assert.equal(r.source, 'cache');
    assert.equal(r.commit, repo.commit);
    assert.equal(hub.requests.length, before);
  });

  test('HF_HUB_OFFLINE=1 with a model not in the cache fails without a request', async () => {
    const before = hub.requests.length;
    const msg = await failure(repo.id, { env: hubEnv(hub.url, root, { HF_HUB_CACHE: join(root, 'empty-cache'), HF_HUB_OFFLINE: '1' }) });
    assert.match(msg, /py-org\/py-model \(revision main\) is not cached/);
    assert.match(msg, /HF_HUB_OFFLINE/);
    assert.equal(hub.requests.length, before);
  });

  test('offline, a snapshot missing a shard is not taken for complete', async () => {
    const cache = join(root, 'partial-cache');
    writePythonCache(cache, TINY_WANTED.filter((f) => f !== 'model-00002-of-00002.safetensors'));
    const msg = await failure(repo.id, { env: hubEnv(hub.url, root, { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }) });
    assert.match(msg, /lacks model-00002-of-00002\.safetensors/);
  });

  test('a Hub that refuses connections falls back to the cached snapshot with one warning', async () => {
    const warnings: string[] = [];
    const r = await resolveModelPath(repo.id, { env: hubEnv(closedPortUrl, root, { HF_HUB_CACHE: pyCache() }), warn: (m) => warnings.push(m) });
    assert.equal(r.source, 'cache');
    assert.equal(r.commit, repo.commit);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, new RegExp(`^could not reach the Hub \\(.*ECONNREFUSED.*\\); using the cached snapshot ${repo.commit} of py-org/py-model$`));
  });

  test('a Hub that never answers times out and falls back to the cache', async () => {
    const warnings: string[] = [];
    const t0 = performance.now();
    const r = await resolveModelPath(repo.id, {
      env: hubEnv(silentUrl, root, { HF_HUB_CACHE: pyCache(), HF_HUB_DOWNLOAD_TIMEOUT: '0.3' }),
      warn: (m) => warnings.push(m),
    });
    assert.ok(performance.now() - t0 < 3000);
    assert.equal(r.source, 'cache');
    assert.match(warnings.join('\n'), /could not reach the Hub \(no answer within 0\.3 s\)/);
  });

  test('an unreachable Hub without the model cached is a clear error', async () => {
    const msg = await failure(repo.id, { env: hubEnv(closedPortUrl, root, { HF_HUB_CACHE: join(root, 'empty-cache') }) });
    assert.match(msg, new RegExp(`could not reach the Hub at ${closedPortUrl.replace(/\./g, '\\.')} \\(.*ECONNREFUSED`));
    assert.match(msg, /py-org\/py-model \(revision main\) is not in the cache/);
  });

  test('an unreachable Hub with another revision cached is still an error', async () => {
    const msg = await failure(repo.id, { env: hubEnv(closedPortUrl, root, { HF_HUB_CACHE: pyCache() }), revision: 'dev' });
    assert.match(msg, /no snapshot recorded for revision "dev"/);
  });
});
