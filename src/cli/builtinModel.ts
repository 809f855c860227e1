import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The tiny shapes model shipped with Iris, served when no --model-path is given. */
export const BUILTIN_MODEL_NAME = 'iris-shapes-v1';

export function builtinModelPath(): string {
  // dist/src/cli -> package root
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const dir = join(root, 'models', BUILTIN_MODEL_NAME);
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`the built-in model is missing (${dir}); give --model-path`);
  return dir;
}
