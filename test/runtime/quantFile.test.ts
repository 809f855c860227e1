import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModelConfig } from '../../src/models/registry.js';
import { buildQwen2TextGraph } from '../../src/models/qwen2_vl/text.js';
import { quantPolicies, sessionQuant } from '../../src/runtime/quant/policy.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { fixturePath } from '../helpers/paths.js';

const MODEL = fixturePath('golden/qwen2_vl/model');

/** The text session's quantized-weights file for int4 in a cache folder (not written yet). */
function int4File(cacheDir = mkdtempSync(join(tmpdir(), 'iris-qf-'))) {
  const store = WeightStore.open(MODEL);
  const quant = sessionQuant(store, 'text', quantPolicies('int4').text, 4, cacheDir);
  buildQwen2TextGraph(store, loadModelConfig(MODEL).text, 'model', 16, quant);
  return quant!.file;
}

test('quantized weights written by two threads are the bytes one thread writes; a written file is reused', async () => {
  const one = int4File();
  const two = int4File();
  const progress: number[] = [];
  await one.materialize(undefined, 1);
  await two.materialize((f) => progress.push(f), 2, 0);
  assert.ok(one.bytes > 0);
  assert.deepEqual(readFileSync(two.path), readFileSync(one.path));
  assert.equal(progress[progress.length - 1], 1);
  assert.ok(progress.every((f, i) => i === 0 || f >= progress[i - 1]!), 'progress only grows');
  assert.ok(two.cached);
  // The same jobs in the same folder: the file is found, not written again.
  const again = int4File(join(two.path, '..', '..'));
  assert.equal(again.path, two.path);
  assert.ok(again.cached);
});
