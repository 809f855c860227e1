import { listFiles, modelInfo, pathsInfo } from '@huggingface/hub';
import { ModelLoadError } from '../errors.js';
import { COMMIT_SHA } from './cacheLayout.js';
import { EXTRA_TEMPLATES_DIR } from './wantedFiles.js';

/** A file of the repo at one commit, as the tree API describes it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** Blob name in the cache: the sha256 of LFS files, the git blob sha1 of others (huggingface_hub's etag). */
  etag: string;
  /** sha256 of the contents (LFS files), checked after download. */
  sha256?: string;
  /** git blob sha1 of the contents (non-LFS files), checked after download. */
  gitSha1?: string;
}

/** How the library reaches the Hub: our fetch, our endpoint. */
export interface HubAccess {
  hubUrl: string;
  fetch: typeof fetch;
}

// Passed as {type, name} so that an org literally named "datasets" or "spaces" stays a model repo.
const model = (repo: string) => ({ type: 'model' as const, name: repo });

function toRemote(e: { path: string; size: number; oid?: string; lfs?: { oid: string; size: number } }): RemoteFile {
  if (e.lfs) return { path: e.path, size: e.lfs.size, etag: e.lfs.oid, sha256: e.lfs.oid };
  if (!e.oid) throw new ModelLoadError(`the Hub gave no hash for ${e.path}`);
  return { path: e.path, size: e.size, etag: e.oid, gitSha1: e.oid };
}

/** The commit a branch or tag points to now (the model info API's `sha`); a full sha is kept. */
export async function resolveCommit(repo: string, revision: string, hub: HubAccess): Promise<string> {
  if (COMMIT_SHA.test(revision)) return revision;
  const info = await modelInfo({ name: repo, revision, additionalFields: ['sha'], hubUrl: hub.hubUrl, fetch: hub.fetch });
  if (!info.sha || !COMMIT_SHA.test(info.sha)) throw new ModelLoadError(`the Hub gave no commit sha for ${repo} at revision ${revision}`);
  return info.sha;
}

/**
 * The files at the top of the repo (where everything Iris reads lives) plus the extra chat
 * templates folder. Not recursive: big repos keep many variants in subfolders.
 */
export async function listRepoFiles(repo: string, commit: string, hub: HubAccess): Promise<Map<string, RemoteFile>> {
  const files = new Map<string, RemoteFile>();
  let extraTemplates = false;
  for await (const e of listFiles({ repo: model(repo), revision: commit, hubUrl: hub.hubUrl, fetch: hub.fetch })) {
    if (e.type === 'file') files.set(e.path, toRemote(e));
    else if (e.type === 'directory' && e.path === EXTRA_TEMPLATES_DIR) extraTemplates = true;
  }
  if (extraTemplates) {
    for await (const e of listFiles({ repo: model(repo), revision: commit, path: EXTRA_TEMPLATES_DIR, hubUrl: hub.hubUrl, fetch: hub.fetch })) {
      if (e.type === 'file') files.set(e.path, toRemote(e));
    }
  }
  return files;
}

/** Details of files not in the top-level listing (shards an index keeps in a subfolder). */
export async function describeFiles(repo: string, commit: string, paths: string[], hub: HubAccess): Promise<Map<string, RemoteFile>> {
  const files = new Map<string, RemoteFile>();
  if (paths.length === 0) return files;
  for (const e of await pathsInfo({ repo: model(repo), revision: commit, paths, hubUrl: hub.hubUrl, fetch: hub.fetch })) {
    if (e.type === 'file') files.set(e.path, toRemote(e));
  }
  return files;
}
