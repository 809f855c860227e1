import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Tests run from dist/test; fixtures stay in the source tree. */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function fixturePath(rel: string): string {
  return join(root, 'test', 'fixtures', rel);
}

export const projectRoot = root;

// Quantized weights written by tests (and by servers they start) go to a folder of this
// test process, not the user's cache.
if (!process.env.IRIS_CACHE_DIR) {
  const dir = mkdtempSync(join(tmpdir(), `iris-cache-${process.pid}-`));
  process.env.IRIS_CACHE_DIR = dir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
}
