import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';

export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/**
 * One model repo in the huggingface_hub cache, laid out exactly as the Python library does
 * so that either side can use what the other downloaded:
 *
 *   models--ORG--NAME/
 *     blobs/<etag>                 file contents; etag = sha256 for LFS files, git blob sha1 otherwise
 *     blobs/<etag>.incomplete      a download under way (resumed with Range)
 *     refs/<revision>              the commit sha a branch or tag pointed to (no newline)
 *     snapshots/<commit>/<file>    relative symlink to ../../blobs/<etag>
 */
export class RepoCache {
  readonly root: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    this.root = join(cacheDir, getRepoFolderName({ type: 'model', name: repo }));
  }

  get blobsDir(): string {
    return join(this.root, 'blobs');
  }

  blobPath(etag: string): string {
    return join(this.root, 'blobs', etag);
  }

  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }

  snapshotDir(commit: string): string {
    return join(this.root, 'snapshots', commit);
  }

  /** The snapshot entry of `file`; it may be missing or a dangling link. */
  filePath(commit: string, file: string): string {
    return join(this.snapshotDir(commit), file);
  }

  /** The commit a revision resolves to: a full sha is its own; a branch or tag is read from refs/. */
  commitOf(revision: string): string | undefined {
    if (COMMIT_SHA.test(revision)) return revision;
    try {
      const sha = readFileSync(join(this.root, 'refs', revision), 'utf8').trim();
      return COMMIT_SHA.test(sha) ? sha : undefined;
    } catch {
      return undefined;
    }
  }

  /** Remembers what a branch or tag resolved to, so offline runs can find the snapshot. */
  writeRef(revision: string, commit: string): void {
    if (COMMIT_SHA.test(revision)) return;
    const ref = join(this.root, 'refs', revision);
    mkdirSync(dirname(ref), { recursive: true });
    writeFileSync(ref, commit); // no trailing newline, like huggingface_hub
  }

  /** Size of the snapshot's `file` (following its symlink), or undefined when absent or dangling. */
  cachedSize(commit: string, file: string): number | undefined {
    return statSync(this.filePath(commit, file), { throwIfNoEntry: false })?.size;
  }

  /** Size of a finished blob, or undefined. */
  blobSize(etag: string): number | undefined {
    return statSync(this.blobPath(etag), { throwIfNoEntry: false })?.size;
  }

  /**
   * Points snapshots/<commit>/<file> at blobs/<etag> with a relative link, as huggingface_hub
   * does, so the cache keeps working when the whole folder is moved.
   */
  link(commit: string, file: string, etag: string): void {
    const at = this.filePath(commit, file);
    mkdirSync(dirname(at), { recursive: true });
    rmSync(at, { force: true });
    symlinkSync(relative(dirname(at), this.blobPath(etag)), at);
  }
}
