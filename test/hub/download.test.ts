/**
 * A Hub model id is downloaded into the huggingface_hub cache layout, fetching only the files
 * Iris reads, and a second call finds everything in the cache.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scanCacheDir } from '@huggingface/hub';
import { DownloadProgress, resolveModelPath } from '../../src/hub/index.js';
import { FakeHub, FakeRepo, hubEnv, startFakeHub, TINY_WANTED, writeTinyRepo } from '../helpers/fakeHub.js';

let hub: FakeHub;
let root: string;
let repo: FakeRepo;
const ID = 'tiny-org/tiny-vlm';

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-hub-dl-'));
  repo = hub.addRepo({ id: ID, dir: writeTinyRepo(join(root, 'repo-src')), refs: ['v1.0'] });
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('downloading a Hub model id', () => {
  const env = () => hubEnv(hub.url, root);
  const storage = () => join(root, 'cache', 'models--tiny-org--tiny-vlm');

  test('the first call downloads only the files Iris reads, in the huggingface_hub layout', async () => {
    const events: DownloadProgress[] = [];
    const r = await resolveModelPath(ID, { env: env(), onProgress: (e) => events.push(e) });
    assert.equal(r.source, 'download');
    assert.equal(r.repo, ID);
    assert.equal(r.commit, repo.commit);
    assert.equal(r.dir, join(storage(), 'snapshots', repo.commit));

    // refs/main holds the commit sha, without a newline.
    assert.equal(readFileSync(join(storage(), 'refs', 'main'), 'utf8'), repo.commit);
    assert.deepEqual(readdirSync(r.dir).sort(), TINY_WANTED);
    for (const f of TINY_WANTED) {
      const at = join(r.dir, f);
      assert.ok(lstatSync(at).isSymbolicLink(), `${f} is a symlink`);
      assert.equal(readlinkSync(at), `../../blobs/${repo.etag(f)}`, `${f} links into blobs/ relatively`);
      assert.deepEqual(readFileSync(at), repo.files.get(f)!.data, `${f} has the repo's bytes`);
      // huggingface_hub's blob names: sha256 of LFS files, git blob sha1 of the others.
      assert.equal(repo.etag(f), repo.files.get(f)!.lfs ? repo.files.get(f)!.sha256 : repo.files.get(f)!.oid);
    }
    assert.match(repo.etag('model-00001-of-00002.safetensors'), /^[0-9a-f]{64}$/);
    assert.match(repo.etag('config.json'), /^[0-9a-f]{40}$/);
    assert.deepEqual(readdirSync(join(storage(), 'blobs')).sort(), TINY_WANTED.map((f) => repo.etag(f)).sort(), 'no .incomplete left, no extra blob');

    // Each wanted file fetched once; the others never asked for at all.
    assert.deepEqual(hub.downloads({ repo: ID }).map((d) => d.file).sort(), TINY_WANTED);
    const touched = new Set(hub.requests.map((q) => q.file).filter(Boolean));
    for (const f of ['README.md', 'pytorch_model.bin', 'model-unused.safetensors', 'onnx/model.onnx']) assert.ok(!touched.has(f), `${f} was requested`);

    // Progress: every file ends with done at its full size.
    for (const f of TINY_WANTED) {
      const last = events.filter((e) => e.file === f).at(-1);
      assert.deepEqual(last, { file: f, bytes: repo.files.get(f)!.data.length, total: repo.files.get(f)!.data.length, done: true });
    }
  });

  test('a second call finds everything in the cache and downloads nothing', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath(ID, { env: env() });
    assert.equal(r.source, 'cache');
    assert.equal(r.dir, join(storage(), 'snapshots', repo.commit));
    const since = hub.requests.slice(before);
    assert.equal(since.filter((q) => q.kind !== 'api').length, 0, `no file request, got ${JSON.stringify(since)}`);
  });

  test('a tag resolves to its commit, is recorded in refs/ and reuses the cached snapshot', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath(ID, { env: env(), revision: 'v1.0' });
    assert.equal(r.commit, repo.commit);
    assert.equal(r.source, 'cache');
    assert.equal(readFileSync(join(storage(), 'refs', 'v1.0'), 'utf8'), repo.commit);
    assert.ok(hub.requests.slice(before).some((q) => q.url.startsWith(`/api/models/${ID}/revision/v1.0`)), 'the tag was looked up');
  });

  test("the library's own cache scanner (a port of huggingface_hub's scan_cache_dir) reads the cache", async () => {
    const info = await scanCacheDir(join(root, 'cache'));
    assert.deepEqual(info.warnings, []);
    const cached = info.repos.find((r) => r.id.name === ID);
    assert.ok(cached, 'repo listed');
    assert.equal(cached.id.type, 'model');
    assert.equal(cached.revisions.length, 1);
    assert.equal(cached.revisions[0]!.commitOid, repo.commit);
    assert.deepEqual([...cached.revisions[0]!.refs].sort(), ['main', 'v1.0']);
    assert.deepEqual(cached.revisions[0]!.files.map((f) => f.path.split('/').pop()).sort(), TINY_WANTED);
    assert.equal(cached.filesCount, TINY_WANTED.length);
  });

  test('a full commit sha is used as is, without a model-info lookup', async () => {
    const before = hub.requests.length;
    const r = await resolveModelPath(ID, { env: env(), revision: repo.commit });
    assert.equal(r.dir, join(storage(), 'snapshots', repo.commit));
    assert.ok(!hub.requests.slice(before).some((q) => q.url.includes('/revision/')), 'no revision lookup for a sha');
  });

  test('a removed snapshot link is restored from its blob without downloading', async () => {
    const cacheDir = join(root, 'cache');
    rmSync(join(cacheDir, 'models--tiny-org--tiny-vlm', 'snapshots', repo.commit, 'config.json'));
    const before = hub.downloads().length;
    const r = await resolveModelPath(ID, { env: env() });
    assert.equal(r.source, 'cache');
    assert.equal(hub.downloads().length, before);
    assert.equal(readlinkSync(join(r.dir, 'config.json')), `../../blobs/${repo.etag('config.json')}`);
  });

  test('a repo with one model.safetensors gets that file and no index', async () => {
    const single = hub.addRepo({ id: 'tiny-org/single', dir: writeTinyRepo(join(root, 'single-src'), { sharded: false }) });
    const r = await resolveModelPath('tiny-org/single', { env: env() });
    const got = readdirSync(r.dir).sort();
    assert.ok(got.includes('model.safetensors'));
    assert.ok(!got.includes('model.safetensors.index.json'));
    assert.ok(!got.includes('pytorch_model.bin'));
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), single.files.get('model.safetensors')!.data);
  });

  test('a repo id without an organisation works (NAME alone)', async () => {
    const solo = hub.addRepo({ id: 'solo', dir: writeTinyRepo(join(root, 'solo-src'), { sharded: false, shardFloats: 64 }) });
    const r = await resolveModelPath('solo', { env: env() });
    assert.equal(r.dir, join(root, 'cache', 'models--solo', 'snapshots', solo.commit));
    assert.ok(readdirSync(r.dir).includes('config.json'));
  });
});
