import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModelConfig } from '../../src/models/registry.js';
import { buildDecoderGraph } from '../../src/models/decoder.js';
import { quantPolicies, sessionQuant } from '../../src/runtime/quant/policy.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { fixturePath } from '../helpers/paths.js';

const MODEL = fixturePath('golden/qwen2_vl/model');
const QWEN_NAMES = { model: 'model', lmHead: 'lm_head.weight', qkvBias: true };

/** The text session's quantized-weights file for int4 in a cache folder (not written yet). */
function int4File(cacheDir = mkdtempSync(join(tmpdir(), 'iris-qf-'))) {
  const store = WeightStore.open(MODEL);
  const quant = sessionQuant(store, 'text', quantPolicies('int4').text, 4, cacheDir);
  buildDecoderGraph(store, loadModelConfig(MODEL).text, QWEN_NAMES, 16, quant);
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

test('writing a quantized file prunes the cache of files that can never be used again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-qf-'));
  const kept = int4File(dir);
  await kept.materialize();
  const folder = join(kept.path, '..');
  // A file for a checkpoint that is gone, one from another format version, a dead process's partial file.
  writeFileSync(join(folder, 'gone.json'), JSON.stringify({ v: 1, files: [['/nonexistent/model.safetensors', 10, 1]] }));
  writeFileSync(join(folder, 'gone.bin'), 'x');
  writeFileSync(join(folder, 'old.json'), JSON.stringify({ v: 0, files: [] }));
  writeFileSync(join(folder, 'old.bin'), 'x');
  writeFileSync(join(folder, 'abc.bin.partial-999999999'), 'x');
  const store = WeightStore.open(MODEL);
  const other = sessionQuant(store, 'text', quantPolicies('int8').text, 4, dir)!;
  buildDecoderGraph(store, loadModelConfig(MODEL).text, QWEN_NAMES, 16, other);
  await other.file.materialize();
  const left = readdirSync(folder).sort();
  assert.deepEqual(left, [kept.path, `${kept.path.slice(0, -4)}.json`, other.file.path, `${other.file.path.slice(0, -4)}.json`].map((p) => p.slice(folder.length + 1)).sort());
  assert.ok(kept.cached, 'a file of an unchanged checkpoint stays usable');
});
