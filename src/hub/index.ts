/**
 * Hugging Face Hub model ids for `--model-path`.
 *
 *   resolveModelPath(arg: string, opts?: ResolveOptions): Promise<ResolvedModel>
 *
 * turns the argument into a local model folder:
 *  - an existing folder is returned as is ({ source: 'folder' });
 *  - an argument that looks like a path (/, ./, ../, ~) but does not exist is an error;
 *  - anything else of the form ORG/NAME or NAME is a Hub model repo. Its files are looked up
 *    in (and downloaded into) the huggingface_hub cache, in the very layout the Python
 *    library uses, and the snapshot folder is returned ({ source: 'cache' | 'download',
 *    repo, commit }). Only the files Iris reads are fetched: config.json, the tokenizer,
 *    processor and generation files present in the repo, and model.safetensors or
 *    model.safetensors.index.json with the shards it lists.
 *
 *   renderDownloadProgress(stream?) (from ./progressBar.js) gives an `onProgress` callback that
 *   draws per-file progress on a terminal or logs one line per finished file otherwise.
 *
 * Environment (read from opts.env, default process.env), as huggingface_hub reads it:
 *   HF_ENDPOINT               Hub URL (default https://huggingface.co)
 *   HF_TOKEN                  access token, else the file $HF_TOKEN_PATH or $HF_HOME/token
 *   HF_HUB_CACHE / HF_HOME    cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else
 *   XDG_CACHE_HOME              $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub
 *   HF_HUB_OFFLINE=1          never touch the network: use the cache or fail
 *   HF_HUB_DOWNLOAD_TIMEOUT   seconds without data before a request fails (default 10)
 *
 * Every failure is a ModelLoadError naming the repo (the caller's AbortSignal reason excepted).
 * When the Hub cannot be reached but the revision is complete in the cache, the cache is used
 * and `warn` is called once.
 */
import { readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { ModelLoadError } from '../errors.js';
import { RepoCache } from './cacheLayout.js';
import { cachedSnapshot } from './cachedSnapshot.js';
import { checkDiskSpace, FreeBytes, statfsFreeBytes } from './diskSpace.js';
import { DownloadProgress, downloadToCache } from './download.js';
import { explainHubError, ErrorContext, isUnreachable, unreachableReason } from './hubErrors.js';
import { hubFetch } from './hubFetch.js';
import { classifyModelArg } from './modelArg.js';
import { describeFiles, HubAccess, listRepoFiles, RemoteFile, resolveCommit } from './remote.js';
import { hubSettings } from './settings.js';
import { shardsOf, sideFiles, WEIGHTS_INDEX, WEIGHTS_SINGLE, weightsLayout } from './wantedFiles.js';

export type { DownloadProgress } from './download.js';
export type { FreeBytes } from './diskSpace.js';
export { renderDownloadProgress } from './progressBar.js';
export { hubCacheDir, hubSettings, type HubSettings } from './settings.js';
export { isRepoId } from './modelArg.js';

export interface ResolveOptions {
  /** Branch, tag or full commit sha; default 'main'. */
  revision?: string;
  /** Environment to read HF_* settings from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Per-file download progress. */
  onProgress?: (e: DownloadProgress) => void;
  /** One-line warnings (e.g. falling back to the cache); default console.warn. */
  warn?: (msg: string) => void;
  /** Cancels lookups and downloads; partial files are kept for a later resume. */
  signal?: AbortSignal;
  /** Free bytes on the disk holding a folder; default fs.statfs (tests fake a small disk). */
  freeBytes?: FreeBytes;
}

export interface ResolvedModel {
  /** The model folder to load. */
  dir: string;
  /** 'folder': the argument itself; 'cache': nothing downloaded; 'download': at least one file fetched. */
  source: 'folder' | 'cache' | 'download';
  /** The Hub repo id (Hub sources only). */
  repo?: string;
  /** The commit sha of the snapshot (Hub sources only). */
  commit?: string;
}

export async function resolveModelPath(arg: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  const parsed = classifyModelArg(arg);
  if (parsed.kind === 'folder') return { dir: parsed.dir, source: 'folder' };
  return resolveHubModel(parsed.repo, opts);
}

async function resolveHubModel(repo: string, opts: ResolveOptions): Promise<ResolvedModel> {
  const settings = hubSettings(opts.env ?? process.env);
  const revision = opts.revision ?? 'main';
  // The revision names a file under refs/: keep it inside the cache.
  if (!revision || revision.startsWith('/') || revision.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new ModelLoadError(`invalid revision "${revision}" for ${repo}`);
  }
  const cache = new RepoCache(settings.cacheDir, repo);
  const fromCache = (commit: string, dir: string): ResolvedModel => ({ dir, source: 'cache', repo, commit });

  if (settings.offline) {
    const c = cachedSnapshot(cache, revision);
    if (c.ok) return fromCache(c.commit, c.dir);
    throw new ModelLoadError(
      `${repo} (revision ${revision}) is not cached in ${settings.cacheDir} (${c.missing}) and HF_HUB_OFFLINE is set; ` +
        'download it once with network access',
    );
  }

  const errorCodes = new Map<string, string>();
  const hub: HubAccess = {
    hubUrl: settings.endpoint,
    fetch: hubFetch({ token: settings.token, endpoint: settings.endpoint, timeoutMs: settings.timeoutMs, signal: opts.signal, errorCodes }),
  };
  const ectx: ErrorContext = { repo, revision, endpoint: settings.endpoint, hasToken: settings.token !== undefined, errorCodes };

  // What the revision is now and which files it has. Only here does an unreachable Hub fall
  // back to the cache, as huggingface_hub does: a download that breaks later is an error.
  let commit: string;
  let files: Map<string, RemoteFile>;
  try {
    commit = await resolveCommit(repo, revision, hub);
    files = await listRepoFiles(repo, commit, hub);
  } catch (e) {
    if (!isUnreachable(e)) throw explainHubError(e, ectx);
    const c = cachedSnapshot(cache, revision);
    const reason = unreachableReason(e);
    if (c.ok) {
      (opts.warn ?? console.warn)(`could not reach the Hub (${reason}); using the cached snapshot ${c.commit} of ${repo}`);
      return fromCache(c.commit, c.dir);
    }
    throw new ModelLoadError(
      `could not reach the Hub at ${settings.endpoint} (${reason}) and ${repo} (revision ${revision}) is not in the cache ${settings.cacheDir} (${c.missing})`,
    );
  }
  cache.writeRef(revision, commit);

  let downloaded = 0;
  const target = { repo, commit, cache, hub, onProgress: opts.onProgress };
  /** Puts `f` in the snapshot: nothing to do, a link to a blob we already have, or a download. */
  const ensure = async (f: RemoteFile, mayDownload: boolean): Promise<boolean> => {
    if (cache.cachedSize(commit, f.path) === f.size) return true;
    if (cache.blobSize(f.etag) === f.size) {
      cache.link(commit, f.path, f.etag);
      return true;
    }
    if (!mayDownload) return false;
    try {
      await downloadToCache(f, target);
    } catch (e) {
      throw explainHubError(e, { ...ectx, file: f.path });
    }
    downloaded++;
    return true;
  };

  const paths = new Set(files.keys());
  const weights: RemoteFile[] = [];
  if (weightsLayout(paths, repo) === WEIGHTS_INDEX) {
    // The index is small and must be read to know which shards to fetch.
    await ensure(files.get(WEIGHTS_INDEX)!, true);
    const shards = shardsOf(readFileSync(cache.filePath(commit, WEIGHTS_INDEX), 'utf8'), `${WEIGHTS_INDEX} of ${repo}`);
    const elsewhere = shards.filter((s) => !files.has(s));
    try {
      for (const [p, f] of await describeFiles(repo, commit, elsewhere, hub)) files.set(p, f);
    } catch (e) {
      throw explainHubError(e, ectx);
    }
    const absent = shards.filter((s) => !files.has(s));
    if (absent.length) throw new ModelLoadError(`${WEIGHTS_INDEX} of ${repo} lists shards that are not in the repo: ${absent.join(', ')}`);
    weights.push(...shards.map((s) => files.get(s)!));
  } else {
    weights.push(files.get(WEIGHTS_SINGLE)!);
  }

  // Side files first, weights last: a snapshot with complete weights is then a complete one
  // (see cachedSnapshot), even if an earlier run was interrupted.
  const todo: RemoteFile[] = [];
  for (const f of [...sideFiles(paths).map((p) => files.get(p)!), ...weights]) {
    if (!(await ensure(f, false))) todo.push(f);
  }
  if (todo.length) {
    let needed = 0;
    for (const f of todo) needed += f.size - ((await stat(cache.incompletePath(f.etag)).catch(() => null))?.size ?? 0);
    await mkdir(cache.blobsDir, { recursive: true });
    await checkDiskSpace(cache.blobsDir, needed, repo, opts.freeBytes ?? statfsFreeBytes);
    for (const f of todo) await ensure(f, true);
  }
  return { dir: cache.snapshotDir(commit), source: downloaded > 0 ? 'download' : 'cache', repo, commit };
}
