import { statfs } from 'node:fs/promises';
import { ModelLoadError } from '../errors.js';
import { formatBytes } from './units.js';

/** Free bytes for an unprivileged writer on the file system holding `dir`; injectable for tests. */
export type FreeBytes = (dir: string) => Promise<number>;

export const statfsFreeBytes: FreeBytes = async (dir) => {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
};

/**
 * Refuses to start downloads that cannot fit: failing after gigabytes have been written
 * would leave a full disk and a useless partial file behind.
 */
export async function checkDiskSpace(dir: string, needed: number, repo: string, freeBytes: FreeBytes): Promise<void> {
  if (needed <= 0) return;
  const free = await freeBytes(dir);
  if (needed > free) {
    throw new ModelLoadError(
      `not enough disk space to download ${repo}: the missing files need ${formatBytes(needed)} but ${dir} has ${formatBytes(free)} free ` +
        '(free some space or point HF_HUB_CACHE at a larger disk)',
    );
  }
}
