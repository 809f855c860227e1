import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { projectRoot } from '../helpers/paths.js';

test('the committed WebAssembly modules are compiled from their .wat sources', () => {
  const r = spawnSync(process.execPath, ['tools/build-wasm.mjs', '--check'], { cwd: projectRoot, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
