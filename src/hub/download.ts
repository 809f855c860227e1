import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { fileDownloadInfo, HubApiError } from '@huggingface/hub';
import { ModelLoadError } from '../errors.js';
import type { RepoCache } from './cacheLayout.js';
import { FileHasher } from './fileHash.js';
import { HubNetworkError } from './hubFetch.js';
import type { HubAccess, RemoteFile } from './remote.js';

/** Progress of one file: `bytes` of `total` are on disk; `done` once it is complete and checked. */
export interface DownloadProgress {
  file: string;
  bytes: number;
  total: number;
  done: boolean;
}

export interface DownloadTarget {
  repo: string;
  commit: string;
  cache: RepoCache;
  hub: HubAccess;
  onProgress?: (e: DownloadProgress) => void;
}

/** A broken connection is retried (resuming) this many times in all before the error is raised. */
const ATTEMPTS = 4;

/**
 * Brings one file into the cache as blobs/<etag> and links it from the snapshot.
 *
 * The library's downloadFileToCacheDir() is not used: it names snapshots after each file's
 * last commit instead of the revision's commit, writes no refs, cannot resume, checks no
 * hash and reports no progress. Its fileDownloadInfo() is used to find where the bytes are
 * (after redirects) and to get proper errors (401/404) before anything is written. The bytes
 * are then read with our own ranged GET rather than downloadFile()'s WebBlob, whose stream()
 * turns a failed request into a bare string and cannot tell a 206 from a 200 that ignored the
 * Range header; both matter for resuming.
 *
 * Partial bytes live in blobs/<etag>.incomplete (as huggingface_hub keeps them) and are
 * resumed with `Range: bytes=N-`, here after a broken connection and in a later run after a
 * stall, a crash or Ctrl-C. A file whose bytes do not hash to what the Hub published is
 * deleted and reported; it never becomes a blob.
 */
export async function downloadToCache(file: RemoteFile, t: DownloadTarget): Promise<void> {
  const { cache } = t;
  const blob = cache.blobPath(file.etag);
  const part = cache.incompletePath(file.etag);
  await mkdir(cache.blobsDir, { recursive: true });
  const report = (bytes: number, done = false) => t.onProgress?.({ file: file.path, bytes, total: file.size, done });

  let url: string | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      if (file.size > 0 && url === undefined) {
        const info = await fileDownloadInfo({ repo: { type: 'model', name: t.repo }, path: file.path, revision: t.commit, hubUrl: t.hub.hubUrl, fetch: t.hub.fetch });
        if (!info) throw new ModelLoadError(`${file.path} not found in ${t.repo} at commit ${t.commit}`);
        url = info.url;
      }
      await fetchInto(file, url ?? '', part, t, report);
      break;
    } catch (e) {
      // Only a broken connection is worth another try; a stall, an HTTP error or a bad hash is not.
      if (!(e instanceof HubNetworkError) || attempt >= ATTEMPTS) throw e;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
  await rename(part, blob);
  cache.link(t.commit, file.path, file.etag);
  report(file.size, true);
}

/** Appends the missing bytes of `file` to `part`, then checks size and hash (deleting `part` if wrong). */
async function fetchInto(file: RemoteFile, url: string, part: string, t: DownloadTarget, report: (bytes: number) => void): Promise<void> {
  let offset = (await stat(part).catch(() => null))?.size ?? 0;
  if (offset > file.size) {
    await rm(part, { force: true });
    offset = 0;
  }
  let hasher = new FileHasher(file);
  if (offset > 0) await hasher.updateFromFile(part);
  report(offset);

  if (file.size === 0) await writeFile(part, '');
  if (offset < file.size) {
    const res = await t.hub.fetch(url, offset > 0 ? { headers: { Range: `bytes=${offset}-` } } : {});
    if (!res.ok) {
      await res.body?.cancel();
      throw new HubApiError(res.url || url, res.status, res.headers.get('x-request-id') ?? undefined, `HTTP ${res.status}`);
    }
    if (offset > 0 && res.status !== 206) {
      // The server sent the whole file instead of the rest: start over with it.
      offset = 0;
      hasher = new FileHasher(file);
    }
    const fh = await open(part, offset > 0 ? 'a' : 'w');
    try {
      let bytes = offset;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        await fh.write(chunk);
        hasher.update(chunk);
        bytes += chunk.byteLength;
        report(bytes);
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  const size = (await stat(part)).size;
  const got = size === file.size ? hasher.digest() : null;
  if (got !== hasher.expected) {
    await rm(part, { force: true });
    const why = got === null ? `${size} bytes instead of ${file.size}` : `${hasher.kind} ${got}, expected ${hasher.expected}`;
    throw new ModelLoadError(`downloaded ${file.path} of ${t.repo} does not match the Hub's hash (${why}); the file was deleted, try again`);
  }
}
