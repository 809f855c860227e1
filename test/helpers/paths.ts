import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Tests run from dist/test; fixtures stay in the source tree. */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function fixturePath(rel: string): string {
  return join(root, 'test', 'fixtures', rel);
}

export const projectRoot = root;
