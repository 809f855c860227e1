import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { GraphBuilder } from '../../src/runtime/onnx/graph.js';
import { DataType } from '../../src/runtime/onnx/model.js';
import { GraphSession, i64 } from '../../src/runtime/session.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { SessionWeights } from '../../src/runtime/sessionWeights.js';
import { fixturePath } from '../helpers/paths.js';

test('a graph gathers rows of a checkpoint tensor read as external data', async () => {
  const store = WeightStore.open(fixturePath('golden/qwen2_5_vl/model'));
  const g = new GraphBuilder('gather');
  const w = new SessionWeights(store, g);
  const ids = g.input('ids', DataType.INT64, ['n']);
  g.output(g.gather(w.weight('model.embed_tokens.weight', [300, 64]), ids), 'y', DataType.FLOAT, ['n', 64]);
  const s = await GraphSession.create(g, w);
  const out = await s.run({ ids: { data: i64([5, 0]), dims: [2] } });
  const table = store.readFloat32('model.embed_tokens.weight');
  assert.deepEqual(out.y!.dims, [2, 64]);
  assert.deepEqual(Array.from(out.y!.data.subarray(0, 64)), Array.from(table.subarray(5 * 64, 6 * 64)));
  assert.deepEqual(Array.from(out.y!.data.subarray(64, 128)), Array.from(table.subarray(0, 64)));
});

test('a BF16 sharded checkpoint is cast to float32 inside the graph', async () => {
  const store = WeightStore.open(fixturePath('golden/qwen2_vl/model'));
  const name = 'model.norm.weight';
  const g = new GraphBuilder('cast');
  const w = new SessionWeights(store, g);
  const x = g.input('x', DataType.FLOAT, [64]);
  g.output(g.mul(x, w.weight(name, [64])), 'y', DataType.FLOAT, [64]);
  const s = await GraphSession.create(g, w);
  const ones = new Float32Array(64).fill(1);
  const out = await s.run({ x: { data: ones, dims: [64] } });
  assert.deepEqual(Array.from(out.y!.data), Array.from(store.readFloat32(name)));
});

test('initializers point into the safetensors files themselves (no copy of the weights in JS)', () => {
  for (const dir of ['golden/qwen2_5_vl/model', 'golden/qwen2_vl/model']) {
    const store = WeightStore.open(fixturePath(dir));
    const g = new GraphBuilder('refs');
    const w = new SessionWeights(store, g);
    for (const name of ['model.norm.weight', 'model.embed_tokens.weight']) w.weight(name);
    assert.equal(w.dataFolder, fixturePath(dir));
    for (const name of ['model.norm.weight', 'model.embed_tokens.weight']) {
      const loc = store.get(name);
      const init = g.build().initializers.find((t) => t.name === `w:${name}`);
      assert.deepEqual(init?.external, { location: basename(loc.file), offset: loc.offset, length: loc.length });
    }
  }
});

test('missing tensors and wrong shapes are named', () => {
  const store = WeightStore.open(fixturePath('golden/qwen2_5_vl/model'));
  assert.throws(() => store.get('nope.weight'), /tensor nope\.weight is missing/);
  assert.throws(() => store.get('model.norm.weight', [65]), /model\.norm\.weight has shape \[64\] but the config implies \[65\]/);
});
