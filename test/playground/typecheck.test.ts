import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../helpers/paths.js';

// The page ships as plain JavaScript; its JSDoc types are checked against the DOM library here,
// since the project's own build compiles without it.
test('the playground JavaScript type-checks (tsc -p playground)', () => {
  const r = spawnSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(projectRoot, 'playground')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
