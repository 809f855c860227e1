/**
 * Downloads that go wrong: corrupted bytes never become a cache entry, a stalled server ends
 * in a timeout error, a broken connection or an earlier partial download is resumed with a
 * Range request, and a disk too small is refused before anything big is written.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IrisError } from '../../src/errors.js';
import { resolveModelPath, ResolveOptions } from '../../src/hub/index.js';
import { FakeHub, FakeRepo, hubEnv, startFakeHub, writeTinyRepo } from '../helpers/fakeHub.js';

let hub: FakeHub;
let root: string;
let src: string;
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-hub-faults-'));
  src = writeTinyRepo(join(root, 'src'));
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh repo and cache for each test, so knobs and cached files do not leak between tests. */
function fresh(name: string): { repo: FakeRepo; env: NodeJS.ProcessEnv; storage: string } {
  const repo = hub.addRepo({ id: `faults/${name}`, dir: src });
  const env = hubEnv(hub.url, root, { HF_HUB_CACHE: join(root, `cache-${name}`) });
  return { repo, env, storage: join(root, `cache-${name}`, `models--faults--${name}`) };
}

async function failure(arg: string, opts: ResolveOptions): Promise<IrisError> {
  try {
    await resolveModelPath(arg, opts);
  } catch (e) {
    assert.ok(e instanceof IrisError, `expected an IrisError, got ${String(e)}`);
    assert.equal(e.type, 'ModelLoadError', e.message);
    return e;
  }
  assert.fail(`resolveModelPath(${arg}) succeeded`);
}

describe('download faults', () => {
  test('bytes that do not match the sha256 are deleted and reported, never cached', async () => {
    const { repo, env, storage } = fresh('corrupt');
    repo.knobs.set(SHARD1, { corrupt: true });
    const e = await failure(repo.id, { env });
    assert.match(e.message, new RegExp(`downloaded ${SHARD1} of faults/corrupt does not match the Hub's hash`));
    assert.match(e.message, new RegExp(`expected ${repo.etag(SHARD1)}`));
    const blob = join(storage, 'blobs', repo.etag(SHARD1));
    assert.ok(!existsSync(blob), 'no blob');
    assert.ok(!existsSync(`${blob}.incomplete`), 'no partial file');
    assert.ok(!existsSync(join(storage, 'snapshots', repo.commit, SHARD1)), 'no snapshot entry');

    // Offline, the snapshot is not taken for complete; with good bytes the next run succeeds.
    await failure(repo.id, { env: { ...env, HF_HUB_OFFLINE: '1' } });
    repo.knobs.delete(SHARD1);
    const r = await resolveModelPath(repo.id, { env });
    assert.deepEqual(readFileSync(join(r.dir, SHARD1)), repo.files.get(SHARD1)!.data);
  });

  test('a stalled download ends in a timeout error naming the file; the next run resumes it with Range', async () => {
    const { repo, env, storage } = fresh('stall');
    const stallAt = 20_000;
    repo.knobs.set(SHARD2, { stallAt });
    const t0 = performance.now();
    const e = await failure(repo.id, { env: { ...env, HF_HUB_DOWNLOAD_TIMEOUT: '0.4' } });
    const secs = (performance.now() - t0) / 1000;
    assert.match(e.message, new RegExp(`timed out downloading ${SHARD2} of faults/stall: no data from the Hub for 0\\.4 s`));
    assert.ok(secs < 5, `gave up after ${secs} s`);
    // The bytes that did arrive are kept where huggingface_hub keeps them.
    const part = join(storage, 'blobs', `${repo.etag(SHARD2)}.incomplete`);
    assert.equal(statSync(part).size, stallAt);

    repo.knobs.delete(SHARD2);
    const before = hub.downloads({ repo: repo.id, file: SHARD2 }).length;
    const r = await resolveModelPath(repo.id, { env });
    const again = hub.downloads({ repo: repo.id, file: SHARD2 }).slice(before);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.range, `bytes=${stallAt}-`);
    assert.deepEqual(readFileSync(join(r.dir, SHARD2)), repo.files.get(SHARD2)!.data);
    assert.ok(!existsSync(part));
  });

  test('a connection cut mid-file is resumed in the same call with a Range request', async () => {
    const { repo, env } = fresh('cut');
    const cutAt = 30_000;
    repo.knobs.set(SHARD1, { cutAt, cutTimes: 1 });
    const r = await resolveModelPath(repo.id, { env });
    assert.equal(r.source, 'download');
    const reqs = hub.downloads({ repo: repo.id, file: SHARD1 });
    assert.equal(reqs.length, 2, JSON.stringify(reqs));
    assert.equal(reqs[0]!.range, undefined);
    assert.equal(reqs[1]!.range, `bytes=${cutAt}-`);
    assert.deepEqual(readFileSync(join(r.dir, SHARD1)), repo.files.get(SHARD1)!.data);
  });

  test('a connection that keeps breaking ends in an error naming the file', async () => {
    const { repo, env } = fresh('cut-always');
    repo.knobs.set(SHARD1, { cutEvery: 1000 });
    const e = await failure(repo.id, { env });
    assert.match(e.message, new RegExp(`could not reach the Hub at .* while downloading ${SHARD1} of faults/cut-always`));
    const tries = hub.downloads({ repo: repo.id, file: SHARD1 });
    assert.ok(tries.length >= 2, 'retried before giving up');
    assert.equal(tries[1]!.range, 'bytes=1000-', 'each retry resumes');
  });

  test('a partial file left by huggingface_hub (blobs/<sha256>.incomplete) is resumed', async () => {
    const { repo, env, storage } = fresh('partial');
    const have = 12_345;
    mkdirSync(join(storage, 'blobs'), { recursive: true });
    writeFileSync(join(storage, 'blobs', `${repo.etag(SHARD1)}.incomplete`), repo.files.get(SHARD1)!.data.subarray(0, have));
    const r = await resolveModelPath(repo.id, { env });
    assert.deepEqual(hub.downloads({ repo: repo.id, file: SHARD1 }).map((q) => q.range), [`bytes=${have}-`]);
    assert.deepEqual(readFileSync(join(r.dir, SHARD1)), repo.files.get(SHARD1)!.data);
  });

  test('too little disk space is refused before the weights are fetched, saying how much is needed', async () => {
    const { repo, env, storage } = fresh('disk');
    const asked: string[] = [];
    const e = await failure(repo.id, {
      env,
      freeBytes: async (dir) => {
        asked.push(dir);
        return 50_000;
      },
    });
    const total = [...repo.files].filter(([p]) => !/README|pytorch|unused|onnx|index/.test(p)).reduce((n, [, f]) => n + f.data.length, 0);
    assert.match(e.message, /not enough disk space to download faults\/disk/);
    assert.match(e.message, new RegExp(`need ${(total / 1000).toFixed(0)} kB but .* has 50\\.0 kB free`));
    assert.deepEqual(asked, [join(storage, 'blobs')]);
    // Only the small index (needed to know the shards) was fetched.
    assert.deepEqual(hub.downloads({ repo: repo.id }).map((q) => q.file), ['model.safetensors.index.json']);
  });
});

describe('cancelling', () => {
  test('an AbortSignal ends a stalled download at once with its reason, keeping the partial file', async () => {
    const { repo, env, storage } = fresh('abort');
    repo.knobs.set(SHARD1, { stallAt: 10_000 });
    const ac = new AbortController();
    const t0 = performance.now();
    const started = resolveModelPath(repo.id, {
      env, // the 5 s stall timeout must not be what ends it
      signal: ac.signal,
      onProgress: (e) => e.file === SHARD1 && e.bytes >= 10_000 && ac.abort(),
    });
    await assert.rejects(started, (e: Error) => e.name === 'AbortError');
    assert.ok(performance.now() - t0 < 2000);
    assert.equal(statSync(join(storage, 'blobs', `${repo.etag(SHARD1)}.incomplete`)).size, 10_000);
  });
});
