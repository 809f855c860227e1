import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { RemoteFile } from './remote.js';

/**
 * The hash the Hub publishes for a file, computed while it downloads: sha256 for LFS files
 * (the tree's `lfs.oid`), the git blob sha1 for the others (the tree's `oid`), so a
 * corrupted or truncated download is caught before it becomes a cache entry.
 */
export class FileHasher {
  private readonly hash: Hash;
  readonly expected: string;
  readonly kind: 'sha256' | 'git sha1';

  constructor(file: RemoteFile) {
    if (file.sha256) {
      this.hash = createHash('sha256');
      this.expected = file.sha256;
      this.kind = 'sha256';
    } else {
      // A git blob id hashes a "blob <size>\0" header before the contents.
      this.hash = createHash('sha1').update(`blob ${file.size}\0`);
      this.expected = file.gitSha1 ?? file.etag;
      this.kind = 'git sha1';
    }
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  /** Feeds the bytes already on disk (a resumed download) through the hash. */
  async updateFromFile(path: string): Promise<void> {
    for await (const chunk of createReadStream(path)) this.hash.update(chunk as Buffer);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
