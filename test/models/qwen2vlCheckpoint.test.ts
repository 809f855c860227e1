/**
 * A tiny Qwen2-VL checkpoint made by tools/checkpoint.ts (BF16, two shards, as the
 * golden fixture): Qwen2-VL's config naming, generation from an image and text,
 * determinism across engine loads, and tie_word_embeddings honoured both ways.
 */
import { asQwen2VLConfig } from '../../src/models/qwen2_vl/config.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IrisError } from '../../src/errors.js';
import { Engine } from '../../src/engine/engine.js';
import { loadModelConfig } from '../../src/models/registry.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import type { CheckpointOptions } from '../../tools/checkpoint.js';
import {
  GREEDY_8,
  cleanupCheckpoints,
  dataUri,
  freshCheckpoint,
  imageMessages,
  lastTokenLogits,
  makePng,
  maxAbsDiff,
  promptIds,
  tinyCheckpoint,
  withEngine,
} from '../helpers/checkpoints.js';

after(cleanupCheckpoints);

const BASE: CheckpointOptions = { arch: 'qwen2_vl', dtype: 'BF16', shards: 2, seed: 11 };

describe('Qwen2-VL tiny checkpoint from the tool', () => {
  let uri = '';
  let otherUri = '';
  before(async () => {
    uri = dataUri(await makePng(112, 84, 1)); // 8x6 patches -> 12 image tokens
    otherUri = dataUri(await makePng(112, 84, 9));
  });

  test('config.json uses Qwen2-VL naming: embed_dim is the vision width, hidden_size the merger output', () => {
    const { dir, config } = tinyCheckpoint(BASE);
    assert.deepEqual(config.vision_config, {
      depth: 2, embed_dim: 32, mlp_ratio: 2, num_heads: 2, in_chans: 3, hidden_size: 64, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2,
    });
    const c = asQwen2VLConfig(loadModelConfig(dir));
    assert.equal(c.architecture, 'Qwen2VLForConditionalGeneration');
    assert.equal(c.vision.kind, 'qwen2_vl');
    assert.equal(c.vision.hiddenSize, 32);
    assert.equal(c.vision.intermediateSize, 64);
    assert.equal(c.vision.outHiddenSize, 64);
    assert.equal(c.vision.activation, 'quick_gelu');
    assert.deepEqual(c.text.mropeSection, [2, 3, 3]);
    const store = WeightStore.open(dir);
    assert.deepEqual(store.get('visual.blocks.1.norm2.bias').shape, [32]);
    assert.deepEqual(store.get('visual.blocks.1.mlp.fc1.weight').shape, [64, 32]);
    assert.deepEqual(store.get('visual.merger.mlp.2.weight').shape, [64, 128]);
  });

  test('generates from an image and text; the image changes the output', async () => {
    const { dir } = tinyCheckpoint(BASE);
    await withEngine(dir, async (engine) => {
      assert.equal(engine.info.architecture, 'Qwen2VLForConditionalGeneration');
      assert.equal(engine.info.weightBytes, tinyCheckpoint(BASE).totalBytes);
      const r = await engine.generate({ messages: imageMessages(uri), sampling: GREEDY_8 });
      assert.equal(r.tokenIds.length, 8);
      assert.equal(r.finishReason, 'length');
      assert.ok(r.prompt!.includes('<|vision_start|><|image_pad|><|vision_end|>What is in this image?'));
      const textOnly = engine.tokenizer.encode(r.prompt!).length;
      assert.equal(r.usage.promptTokens, textOnly - 1 + 12, 'one placeholder expanded to 12 image tokens');
      assert.ok(r.tokenIds.every((t) => t >= 0 && t < 300));

      const other = await engine.generate({ messages: imageMessages(otherUri), sampling: GREEDY_8 });
      const first = (x: typeof r) => new Map(x.logprobs![0]!.top.map((t) => [t.tokenId, t.logprob]));
      const a = first(r);
      const b = first(other);
      const shared = [...a.keys()].filter((k) => b.has(k));
      assert.ok(shared.length > 0);
      const moved = Math.max(...shared.map((k) => Math.abs(a.get(k)! - b.get(k)!)));
      assert.ok(moved > 1e-3, `another image moved the first-step logprobs by only ${moved}`);
    });
  });

  test('tokens and logprobs are the same across two engine loads', async () => {
    const { dir } = tinyCheckpoint(BASE);
    const once = () =>
      withEngine(dir, async (e) => ({
        image: await e.generate({ messages: imageMessages(uri, 'Describe the picture.'), sampling: GREEDY_8 }),
        text: await e.generate({ inputIds: promptIds(20), sampling: GREEDY_8 }),
      }));
    const first = await once();
    const second = await once();
    assert.deepEqual(second.image.tokenIds, first.image.tokenIds);
    assert.deepEqual(second.image.logprobs, first.image.logprobs);
    assert.deepEqual(second.text.tokenIds, first.text.tokenIds);
    assert.deepEqual(second.text.logprobs, first.text.logprobs);
    assert.equal(second.image.text, first.image.text);
  });
});

describe('tie_word_embeddings', () => {
  const ids = promptIds(10, 3);

  test('true: loads without lm_head.weight and uses the embedding as the output matrix', async () => {
    const tied = tinyCheckpoint({ ...BASE, tieWordEmbeddings: true });
    assert.equal(tied.config.tie_word_embeddings, true);
    assert.ok(!WeightStore.open(tied.dir).has('lm_head.weight'));
    // An untied checkpoint whose lm_head holds exactly the embedding's values.
    const untiedSame = tinyCheckpoint(
      { ...BASE, tieWordEmbeddings: false, mapTensor: (t) => (t.name === 'lm_head.weight' ? { ...t, valuesFrom: 'model.embed_tokens.weight' } : t) },
      'lm_head-equals-embedding',
    );
    assert.deepEqual(WeightStore.open(untiedSame.dir).readFloat32('lm_head.weight'), WeightStore.open(tied.dir).readFloat32('model.embed_tokens.weight'));
    const a = await lastTokenLogits(tied.dir, ids);
    const b = await lastTokenLogits(untiedSame.dir, ids);
    assert.equal(maxAbsDiff(a, b), 0);

    const untied = tinyCheckpoint({ ...BASE, tieWordEmbeddings: false });
    const c = await lastTokenLogits(untied.dir, ids);
    assert.ok(maxAbsDiff(a, c) > 1e-3, 'a different lm_head must change the logits');

    await withEngine(tied.dir, async (engine) => {
      assert.equal(engine.info.weightBytes, untied.totalBytes - 300 * 64 * 2);
      const r = await engine.generate({ messages: imageMessages(dataUri(await makePng(56, 56))), sampling: GREEDY_8 });
      assert.equal(r.tokenIds.length, 8);
    });
  });

  test('true with an lm_head.weight in the file anyway: the embedding is used, as transformers ties them', async () => {
    const tied = tinyCheckpoint({ ...BASE, tieWordEmbeddings: true });
    // Written untied (with its own lm_head values), then flagged as tied in config.json.
    const withHead = freshCheckpoint({ ...BASE, tieWordEmbeddings: false, patchConfig: (c) => (c.tie_word_embeddings = true) });
    assert.ok(WeightStore.open(withHead.dir).has('lm_head.weight'));
    assert.equal(maxAbsDiff(await lastTokenLogits(withHead.dir, ids), await lastTokenLogits(tied.dir, ids)), 0);
  });

  test('false: lm_head.weight is required and named when missing', async () => {
    const { dir } = freshCheckpoint({ ...BASE, tieWordEmbeddings: false, mapTensor: (t) => (t.name === 'lm_head.weight' ? null : t) });
    let engine: Engine | null = null;
    await assert.rejects(
      (async () => {
        engine = await Engine.load({ modelPath: dir, threads: 1, maxTotalTokens: 1024 });
      })(),
      (e: unknown) => e instanceof IrisError && e.type === 'ModelLoadError' && /tensor lm_head\.weight is missing from the checkpoint/.test(e.message),
    );
    await (engine as Engine | null)?.shutdown();
  });
});
