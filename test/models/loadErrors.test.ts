/**
 * A broken model folder fails to load with a ModelLoadError that names the file,
 * architecture or tensor at fault, whether the fault is found on the caller's
 * thread (config, tokenizer) or in the engine thread (weights).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { IrisError, ModelLoadError } from '../../src/errors.js';
import { loadModelConfig } from '../../src/models/registry.js';
import { loadModel } from '../../src/models/registry.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { cleanupCheckpoints, freshCheckpoint } from '../helpers/checkpoints.js';
import type { CheckpointOptions } from '../../tools/checkpoint.js';

after(cleanupCheckpoints);

const TINY: CheckpointOptions = { arch: 'qwen2_5_vl', dtype: 'F32' };

/** Engine.load must reject with a ModelLoadError-typed IrisError whose message matches. */
async function assertLoadFails(modelPath: string, message: RegExp): Promise<IrisError> {
  let engine: Engine | null = null;
  try {
    engine = await Engine.load({ modelPath, threads: 1, maxTotalTokens: 1024 });
  } catch (e) {
    assert.ok(e instanceof IrisError, `expected an IrisError, got ${String(e)}`);
    assert.equal(e.type, 'ModelLoadError', `error type of: ${e.message}`);
    assert.equal(e.status, 500);
    assert.match(e.message, message);
    return e;
  } finally {
    await engine?.shutdown();
  }
  assert.fail(`Engine.load(${modelPath}) succeeded; expected ${message}`);
}

function editJson(file: string, edit: (j: Record<string, any>) => void): void {
  const j = JSON.parse(readFileSync(file, 'utf8'));
  edit(j);
  writeFileSync(file, JSON.stringify(j, null, 2));
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('model folder errors found before the engine thread starts', () => {
  test('missing config.json names the file', async () => {
    const { dir } = freshCheckpoint(TINY);
    unlinkSync(join(dir, 'config.json'));
    await assertLoadFails(dir, new RegExp(`config\\.json not found: ${esc(join(dir, 'config.json'))}`));
  });

  test('an unsupported architecture is named with the supported ones', async () => {
    const { dir } = freshCheckpoint({ ...TINY, patchConfig: (c) => (c.architectures = ['LlamaForCausalLM']) });
    const e = await assertLoadFails(dir, /unsupported architecture "LlamaForCausalLM"/);
    assert.match(e.message, /Qwen2_5_VLForConditionalGeneration/);
    assert.match(e.message, /Qwen2VLForConditionalGeneration/);
    assert.ok(e.message.includes(join(dir, 'config.json')));
  });

  test('config.json without architectures says so', async () => {
    const { dir } = freshCheckpoint({ ...TINY, patchConfig: (c) => delete c.architectures });
    await assertLoadFails(dir, /unsupported architecture "\(none\)"/);
  });

  test('missing tokenizer.json names the file', async () => {
    const { dir } = freshCheckpoint(TINY);
    unlinkSync(join(dir, 'tokenizer.json'));
    await assertLoadFails(dir, new RegExp(`tokenizer file not found: ${esc(join(dir, 'tokenizer.json'))}`));
  });

  test('an mrope_section that does not fit the head size is refused', async () => {
    const { dir } = freshCheckpoint({ ...TINY, patchConfig: (c) => (c.rope_scaling.mrope_section = [2, 3, 4]) });
    await assertLoadFails(dir, /mrope_section \[2,3,4\] must sum to head_dim\/2 = 8/);
  });
});

describe('weight errors found in the engine thread', () => {
  test('no model.safetensors and no index: names the folder and what was expected', async () => {
    const { dir } = freshCheckpoint(TINY);
    unlinkSync(join(dir, 'model.safetensors'));
    await assertLoadFails(dir, new RegExp(`no weights in ${esc(dir)}: expected model\\.safetensors or model\\.safetensors\\.index\\.json`));
  });

  test('a shard listed in the index but absent is named', async () => {
    const { dir, files } = freshCheckpoint({ ...TINY, dtype: 'BF16', shards: 3 });
    assert.deepEqual(files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    unlinkSync(join(dir, files[1]!));
    await assertLoadFails(dir, new RegExp(`weights shard ${esc(join(dir, files[1]!))} listed in .*model\\.safetensors\\.index\\.json is missing`));
  });

  test('a shard outside the model folder is refused', async () => {
    const { dir } = freshCheckpoint({ ...TINY, dtype: 'BF16', shards: 2 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    for (const k of Object.keys(index.weight_map)) index.weight_map[k] = '../elsewhere.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    await assertLoadFails(dir, /weights shard .*elsewhere\.safetensors listed in .* is outside the model folder/);
  });

  test('a truncated shard is named', async () => {
    const { dir, files } = freshCheckpoint({ ...TINY, dtype: 'BF16', shards: 2 });
    const f = join(dir, files[0]!);
    const bytes = readFileSync(f);
    writeFileSync(f, bytes.subarray(0, bytes.length - 100));
    await assertLoadFails(dir, new RegExp(`${esc(f)}: tensor .* has inconsistent data offsets`));
  });

  test('a tensor missing from the checkpoint is named', async () => {
    const name = 'model.layers.1.mlp.up_proj.weight';
    const { dir } = freshCheckpoint({ ...TINY, mapTensor: (t) => (t.name === name ? null : t) });
    await assertLoadFails(dir, new RegExp(`tensor ${esc(name)} is missing from the checkpoint in ${esc(dir)}`));
  });

  test('a vision tensor missing from a sharded checkpoint is named', async () => {
    const name = 'visual.blocks.1.attn.qkv.bias';
    const { dir } = freshCheckpoint({ ...TINY, arch: 'qwen2_vl', dtype: 'BF16', shards: 2, mapTensor: (t) => (t.name === name ? null : t) });
    await assertLoadFails(dir, new RegExp(`tensor ${esc(name)} is missing`));
  });

  test('config.json disagreeing with the tensors: the tensor, its shape and the implied shape are named', async () => {
    // intermediate_size 96 in config.json, tensors written for 128.
    const { dir } = freshCheckpoint(TINY);
    editJson(join(dir, 'config.json'), (c) => (c.intermediate_size = 96));
    await assertLoadFails(dir, /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128,64\] but the config implies \[96,64\]/);
  });

  test('a tensor written with a wrong shape is named', async () => {
    const name = 'model.layers.1.self_attn.k_proj.weight';
    const { dir } = freshCheckpoint({ ...TINY, mapTensor: (t) => (t.name === name ? { ...t, shape: [16, 64] } : t) });
    await assertLoadFails(dir, new RegExp(`tensor ${esc(name)} has shape \\[16,64\\] but the config implies \\[32,64\\]`));
  });

  test('a Qwen2-VL vision width in config.json that the tensors do not have is named', async () => {
    const { dir } = freshCheckpoint({ ...TINY, arch: 'qwen2_vl' });
    editJson(join(dir, 'config.json'), (c) => (c.vision_config.embed_dim = 48));
    await assertLoadFails(dir, /tensor visual\.patch_embed\.proj\.weight has shape \[32,3,2,14,14\] but the config implies \[48,3,2,14,14\]/);
  });

  test('an unsupported weight dtype (I32) is named with the supported ones', async () => {
    const name = 'model.norm.weight';
    const { dir } = freshCheckpoint({ ...TINY, mapTensor: (t) => (t.name === name ? { ...t, dtype: 'I32' } : t) });
    await assertLoadFails(dir, new RegExp(`tensor ${esc(name)} has dtype I32; only F32, F16 and BF16 are supported`));
  });

  test('an index that is not JSON is named', async () => {
    const { dir } = freshCheckpoint({ ...TINY, shards: 2 });
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
    await assertLoadFails(dir, /model\.safetensors\.index\.json is not valid JSON/);
  });
});

describe('the same errors through WeightStore and the model registry', () => {
  test('loadModel rejects with a ModelLoadError naming the missing tensor', async () => {
    const name = 'visual.merger.mlp.2.bias';
    const { dir } = freshCheckpoint({ ...TINY, mapTensor: (t) => (t.name === name ? null : t) });
    const config = loadModelConfig(dir);
    await assert.rejects(loadModel(dir, config, { intraOpThreads: 1 }), (e: unknown) => e instanceof ModelLoadError && e.message.includes(`tensor ${name} is missing`));
  });

  test('WeightStore.open names the missing shard; get() names dtype and shape faults', () => {
    const { dir, files } = freshCheckpoint({ ...TINY, dtype: 'BF16', shards: 2, mapTensor: (t) => (t.name === 'model.norm.weight' ? { ...t, dtype: 'I32' } : t) });
    const store = WeightStore.open(dir);
    assert.throws(() => store.get('model.norm.weight'), /tensor model\.norm\.weight has dtype I32/);
    assert.throws(() => store.get('model.embed_tokens.weight', [301, 64]), /has shape \[300,64\] but the config implies \[301,64\]/);
    assert.equal(store.get('model.embed_tokens.weight', [300, 64]).dtype, 'BF16');
    rmSync(join(dir, files[0]!));
    assert.throws(() => WeightStore.open(dir), (e: unknown) => e instanceof ModelLoadError && e.message.includes(files[0]!));
  });
});
