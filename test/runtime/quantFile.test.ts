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

test('mixture-of-experts weights are written once, interleaved for the fused kernel, and read from the file', async () => {
  const dir = fixturePath('golden-extra/deepseek_vl2_bf16/model');
  const store = WeightStore.open(dir);
  const cfg = loadModelConfig(dir).text;
  const quant = sessionQuant(store, 'text', null, 4, mkdtempSync(join(tmpdir(), 'iris-qf-')), true)!;
  const { g } = buildDecoderGraph(store, cfg, { model: 'language.model', lmHead: 'language.lm_head.weight', qkvBias: false }, 16, quant);
  await quant.file.materialize();
  const moe = cfg.moe!;
  const [E, I, H] = [moe.experts, moe.intermediateSize, cfg.hiddenSize];
  const bytes = readFileSync(quant.file.path);
  const encoded = Buffer.from(g.encode()).toString('latin1');
  // Layer 0 is dense; each MoE layer has fc1 [E, 2I, H] (gate row j, then up row j) and fc2 [E, H, I].
  const layers = Array.from({ length: cfg.numLayers }, (_, i) => i).filter((i) => i >= moe.firstDense);
  assert.equal(quant.file.bytes, layers.length * E * 3 * I * H * 4);
  let at = 0;
  const floats = (n: number) => {
    const out = new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + n * 4));
    at += n * 4;
    return out;
  };
  for (const l of layers) {
    const p = `language.model.layers.${l}.mlp.experts`;
    assert.ok(encoded.includes(`rows:${p}.fc1`), 'fc1 is an initializer read from the file');
    const fc1 = floats(E * 2 * I * H);
    for (const e of [0, E - 1]) {
      const gate = store.readFloat32(`${p}.${e}.gate_proj.weight`, [I, H]);
      const up = store.readFloat32(`${p}.${e}.up_proj.weight`, [I, H]);
      for (const j of [0, I - 1]) {
        assert.deepEqual(fc1.subarray((e * 2 * I + 2 * j) * H, (e * 2 * I + 2 * j + 1) * H), gate.subarray(j * H, (j + 1) * H));
        assert.deepEqual(fc1.subarray((e * 2 * I + 2 * j + 1) * H, (e * 2 * I + 2 * j + 2) * H), up.subarray(j * H, (j + 1) * H));
      }
    }
    at = Math.ceil(at / 64) * 64;
    const fc2 = floats(E * H * I);
    assert.deepEqual(fc2.subarray((E - 1) * H * I), store.readFloat32(`${p}.${E - 1}.down_proj.weight`, [H, I]));
    at = Math.ceil(at / 64) * 64;
  }
});
