import { readFileSync } from 'node:fs';
import type { RepoCache } from './cacheLayout.js';
import { CONFIG, WEIGHTS_INDEX, WEIGHTS_SINGLE, shardsOf } from './wantedFiles.js';

export type CachedSnapshot = { ok: true; commit: string; dir: string } | { ok: false; missing: string };

/**
 * The snapshot of `revision` already in the cache, if it holds a usable model: config.json
 * and the complete safetensors weights (downloads fetch those last, so their presence means
 * the side files were fetched too). Used without the network: offline, or when the Hub
 * cannot be reached. Works on caches written by huggingface_hub as well as by Iris.
 */
export function cachedSnapshot(cache: RepoCache, revision: string): CachedSnapshot {
  const commit = cache.commitOf(revision);
  if (!commit) return { ok: false, missing: `no snapshot recorded for revision "${revision}"` };
  const has = (f: string) => cache.cachedSize(commit, f) !== undefined;
  const missing: string[] = [];
  if (!has(CONFIG)) missing.push(CONFIG);
  if (has(WEIGHTS_INDEX)) {
    const index = cache.filePath(commit, WEIGHTS_INDEX);
    let shards: string[];
    try {
      shards = shardsOf(readFileSync(index, 'utf8'), index);
    } catch {
      return { ok: false, missing: `${WEIGHTS_INDEX} is unreadable` };
    }
    missing.push(...shards.filter((s) => !has(s)));
  } else if (!has(WEIGHTS_SINGLE)) {
    missing.push(`${WEIGHTS_SINGLE} or ${WEIGHTS_INDEX}`);
  }
  if (missing.length) return { ok: false, missing: `snapshot ${commit} lacks ${missing.join(', ')}` };
  return { ok: true, commit, dir: cache.snapshotDir(commit) };
}
