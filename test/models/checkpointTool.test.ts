/**
 * tools/checkpoint.ts writes checkpoints in the released layouts: the same tensor
 * names, shapes, dtypes and config.json fields as the golden fixtures (which mirror
 * the released files), deterministic values, valid safetensors and shard indexes.
 */
import { asQwen2VLConfig } from '../../src/models/qwen2_vl/config.js';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelConfig } from '../../src/models/registry.js';
import { readSafetensorsHeader } from '../../src/runtime/safetensors.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { CheckpointOptions, PRESETS, PyFloat, defaultMropeSection, f32BitsToBf16, f32BitsToF16, pythonJson, writeCheckpoint } from '../../tools/checkpoint.js';
import { cleanupCheckpoints, freshCheckpoint, tinyCheckpoint } from '../helpers/checkpoints.js';
import { fixturePath, projectRoot } from '../helpers/paths.js';

after(cleanupCheckpoints);

const GOLDEN = {
  qwen2_vl: fixturePath('golden/qwen2_vl/model'),
  qwen2_5_vl: fixturePath('golden/qwen2_5_vl/model'),
};

/** The golden fixtures' sizes, to compare layouts one to one. */
const GOLDEN_OPTS: Record<'qwen2_vl' | 'qwen2_5_vl', CheckpointOptions> = {
  qwen2_vl: { arch: 'qwen2_vl', dtype: 'BF16', shards: 2, text: { maxPositionEmbeddings: 32768 }, vision: { depth: 3, width: 48, numHeads: 4, mlpRatio: 4 } },
  qwen2_5_vl: { arch: 'qwen2_5_vl', dtype: 'F32', vision: { depth: 4, width: 64, numHeads: 4, intermediateSize: 128, fullAttBlockIndexes: [1, 3] } },
};

function tensorTable(dir: string): string[] {
  const s = WeightStore.open(dir);
  return s.names().sort().map((n) => `${n} ${s.get(n).dtype} [${s.get(n).shape}]`);
}

function keyPaths(o: unknown, prefix = ''): string[] {
  if (!o || typeof o !== 'object' || Array.isArray(o)) return [];
  return Object.entries(o).flatMap(([k, v]) => [prefix + k, ...keyPaths(v, `${prefix}${k}.`)]);
}

describe('released layouts (compared with the golden fixtures)', () => {
  for (const arch of ['qwen2_vl', 'qwen2_5_vl'] as const) {
    test(`${arch}: same tensor names, dtypes and shapes as the golden checkpoint`, () => {
      const { dir } = tinyCheckpoint(GOLDEN_OPTS[arch]);
      assert.deepEqual(tensorTable(dir), tensorTable(GOLDEN[arch]));
    });

    test(`${arch}: config.json has the golden fields and parses to the same model config`, () => {
      const { dir } = tinyCheckpoint(GOLDEN_OPTS[arch]);
      const golden = JSON.parse(readFileSync(join(GOLDEN[arch], 'config.json'), 'utf8'));
      const ours = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      // The golden Qwen2.5-VL file also carries pad_token_id (not in the released config.json).
      const goldenKeys = keyPaths(golden).filter((k) => k !== 'pad_token_id');
      assert.deepEqual(new Set(keyPaths(ours)), new Set(goldenKeys));
      if (arch === 'qwen2_vl') assert.deepEqual(keyPaths(ours), goldenKeys, 'same key order');
      const a = asQwen2VLConfig(loadModelConfig(dir));
      const b = asQwen2VLConfig(loadModelConfig(GOLDEN[arch]));
      assert.deepEqual(a.text, { ...b.text, maxPositionEmbeddings: a.text.maxPositionEmbeddings });
      assert.deepEqual(a.vision, b.vision);
      assert.deepEqual([a.imageTokenId, a.videoTokenId, a.visionStartTokenId, a.visionEndTokenId], [b.imageTokenId, b.videoTokenId, b.visionStartTokenId, b.visionEndTokenId]);
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'vocab.json', 'merges.txt']) {
        assert.equal(readFileSync(join(dir, f), 'utf8'), readFileSync(join(GOLDEN[arch], f), 'utf8'), f);
      }
      const pre = JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8'));
      const goldenPre = JSON.parse(readFileSync(join(GOLDEN[arch], 'preprocessor_config.json'), 'utf8'));
      assert.deepEqual(Object.keys(pre), Object.keys(goldenPre));
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')).eos_token_id, [289, 287]);
    });
  }

  test('qwen2_vl 2b preset: the Qwen2-VL-2B-Instruct config and a 4.4 GB BF16 tensor plan', () => {
    const info = freshCheckpoint({ arch: 'qwen2_vl', preset: '2b', dtype: 'BF16', weights: false });
    const text = readFileSync(join(info.dir, 'config.json'), 'utf8');
    assert.match(text, /"rms_norm_eps": 1e-06,/);
    assert.match(text, /"rope_theta": 1000000\.0,/);
    assert.match(text, /"attention_dropout": 0\.0,/);
    assert.deepEqual(info.config.vision_config, {
      depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 1536, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2,
    });
    const c = asQwen2VLConfig(loadModelConfig(info.dir));
    assert.deepEqual(
      { ...c.text },
      { hiddenSize: 1536, intermediateSize: 8960, numLayers: 28, numHeads: 12, numKvHeads: 2, headDim: 128, vocabSize: 151936, rmsNormEps: 1e-6, ropeTheta: 1e6, mropeSection: [16, 24, 24], tieWordEmbeddings: true, maxPositionEmbeddings: 32768 },
    );
    assert.equal(c.vision.hiddenSize, 1280);
    assert.equal(c.vision.intermediateSize, 5120);
    assert.equal(c.vision.outHiddenSize, 1536);
    assert.ok(!info.tensors.some((t) => t.name === 'lm_head.weight'));
    const params = info.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(info.totalBytes, 2 * params);
    // Qwen2-VL-2B: 2.21e9 parameters (1.54e9 text incl. the 0.23e9 embedding, 0.67e9 vision).
    assert.ok(params > 2.20e9 && params < 2.22e9, `${params} parameters`);
    assert.deepEqual(readdirSync(info.dir).filter((f) => f.endsWith('.safetensors')), []);
  });

  test('qwen2_5_vl 7b preset: the Qwen2.5-VL-7B-Instruct config and a 16.6 GB BF16 tensor plan in 5 shards', () => {
    const info = freshCheckpoint({ arch: 'qwen2_5_vl', preset: '7b', dtype: 'BF16', shards: 5, weights: false });
    const c = asQwen2VLConfig(loadModelConfig(info.dir));
    assert.deepEqual(
      { ...c.text },
      { hiddenSize: 3584, intermediateSize: 18944, numLayers: 28, numHeads: 28, numKvHeads: 4, headDim: 128, vocabSize: 152064, rmsNormEps: 1e-6, ropeTheta: 1e6, mropeSection: [16, 24, 24], tieWordEmbeddings: false, maxPositionEmbeddings: 128000 },
    );
    assert.equal(info.config.max_window_layers, 28);
    assert.equal(info.config.sliding_window, 32768);
    assert.deepEqual(info.config.vision_config.fullatt_block_indexes, [7, 15, 23, 31]);
    assert.equal(c.vision.hiddenSize, 1280);
    assert.equal(c.vision.intermediateSize, 3420);
    assert.equal(c.vision.outHiddenSize, 3584);
    assert.equal(info.files.length, 5);
    assert.ok(info.tensors.some((t) => t.name === 'lm_head.weight'));
    const params = info.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    // Qwen2.5-VL-7B: 8.29e9 parameters (7.62e9 text incl. embedding and lm_head, 0.68e9 vision).
    assert.ok(params > 8.28e9 && params < 8.30e9, `${params} parameters`);
  });

  test('the presets and default mrope sections', () => {
    assert.deepEqual(defaultMropeSection(128), [16, 24, 24]);
    assert.deepEqual(defaultMropeSection(16), [2, 3, 3]);
    assert.deepEqual(Object.keys(PRESETS.qwen2_vl).sort(), ['2b', 'tiny']);
    assert.deepEqual(Object.keys(PRESETS.qwen2_5_vl).sort(), ['3b', '7b', 'tiny']);
  });

  test('JSON as Python writes it', () => {
    assert.equal(pythonJson({ a: new PyFloat(0), b: new PyFloat(1e-6), c: new PyFloat(1e6), d: new PyFloat(0.02), e: [1, 2], f: {} }),
      '{\n  "a": 0.0,\n  "b": 1e-06,\n  "c": 1000000.0,\n  "d": 0.02,\n  "e": [\n    1,\n    2\n  ],\n  "f": {}\n}');
  });
});

describe('values', () => {
  test('deterministic for a seed, different for another seed', () => {
    const a = freshCheckpoint({ arch: 'qwen2_5_vl', seed: 3 });
    const b = freshCheckpoint({ arch: 'qwen2_5_vl', seed: 3 });
    const c = freshCheckpoint({ arch: 'qwen2_5_vl', seed: 4 });
    const bytes = (d: string) => readFileSync(join(d, 'model.safetensors'));
    assert.ok(bytes(a.dir).equals(bytes(b.dir)));
    assert.ok(!bytes(a.dir).equals(bytes(c.dir)));
  });

  test('scaled like an initializer: matrices N(0, 0.02), norm weights 1 + small noise, tensors independent', () => {
    const s = WeightStore.open(tinyCheckpoint({ arch: 'qwen2_5_vl', dtype: 'F32' }).dir);
    const stats = (x: Float32Array) => {
      let m = 0;
      for (const v of x) m += v;
      m /= x.length;
      let v2 = 0;
      for (const v of x) v2 += (v - m) ** 2;
      return { mean: m, std: Math.sqrt(v2 / x.length) };
    };
    const emb = stats(s.readFloat32('model.embed_tokens.weight'));
    assert.ok(Math.abs(emb.mean) < 0.001 && Math.abs(emb.std - 0.02) < 0.001, JSON.stringify(emb));
    const norm = stats(s.readFloat32('model.layers.0.input_layernorm.weight'));
    assert.ok(Math.abs(norm.mean - 1) < 0.01 && norm.std > 0.01 && norm.std < 0.03, JSON.stringify(norm));
    const q0 = s.readFloat32('model.layers.0.self_attn.q_proj.weight');
    const q1 = s.readFloat32('model.layers.1.self_attn.q_proj.weight');
    assert.notDeepEqual(q0, q1);
  });

  test('BF16 and F16 rounding is round-to-nearest-even', () => {
    const bits = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;
    assert.equal(f32BitsToBf16(bits(1)), 0x3f80);
    assert.equal(f32BitsToBf16(0x3f808000), 0x3f80); // tie -> even
    assert.equal(f32BitsToBf16(0x3f818000), 0x3f82); // tie -> even (up)
    assert.equal(f32BitsToBf16(0x3f808001), 0x3f81);
    assert.equal(f32BitsToF16(bits(1)), 0x3c00);
    assert.equal(f32BitsToF16(bits(65504)), 0x7bff);
    assert.equal(f32BitsToF16(bits(65520)), 0x7c00); // rounds to infinity
    assert.equal(f32BitsToF16(bits(2 ** -24)), 0x0001); // smallest subnormal
    assert.equal(f32BitsToF16(bits(2 ** -25)), 0x0000); // tie -> even (zero)
    assert.equal(f32BitsToF16(bits(-0.02)), 0xa51f);
    assert.equal(f32BitsToF16(bits(1 + 2 ** -11)), 0x3c00); // tie -> even
    assert.equal(f32BitsToF16(bits(1 + 3 * 2 ** -11)), 0x3c02); // tie -> even (up)
  });
});

describe('safetensors files and shards', () => {
  test('headers are 8-byte aligned, data follows without gaps, the index maps every tensor to its file', () => {
    const info = tinyCheckpoint({ arch: 'qwen2_vl', dtype: 'BF16', shards: 3, seed: 1 });
    assert.equal(info.files.length, 3);
    const index = JSON.parse(readFileSync(join(info.dir, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, info.totalBytes);
    const names = Object.keys(index.weight_map);
    assert.deepEqual(names, [...names].sort());
    let total = 0;
    const seen = new Set<string>();
    for (const f of info.files) {
      const path = join(info.dir, f);
      const raw = readFileSync(path);
      const headerLen = Number(raw.readBigUInt64LE(0));
      assert.equal((8 + headerLen) % 8, 0, `${f} header alignment`);
      const header = JSON.parse(raw.subarray(8, 8 + headerLen).toString('utf8'));
      assert.deepEqual(header.__metadata__, { format: 'pt' });
      const locs = readSafetensorsHeader(path);
      let end = 8 + headerLen;
      for (const t of locs) {
        assert.equal(t.offset, end, `${t.name} follows the previous tensor`);
        end += t.length;
        assert.equal(index.weight_map[t.name], f);
        assert.ok(!seen.has(t.name));
        seen.add(t.name);
        total += t.length;
      }
      assert.equal(end, raw.length, `${f} has no trailing bytes`);
    }
    assert.equal(seen.size, names.length);
    assert.equal(total, info.totalBytes);
  });

  test('a split may fall inside a layer; shards are of similar size', () => {
    const info = tinyCheckpoint({ arch: 'qwen2_vl', dtype: 'BF16', shards: 3, seed: 1 });
    const filesOf = new Map<string, Set<string>>();
    for (const t of info.tensors) {
      const m = /^(model\.layers\.\d+|visual\.blocks\.\d+)\./.exec(t.name);
      if (m) filesOf.set(m[1]!, (filesOf.get(m[1]!) ?? new Set()).add(t.file));
    }
    assert.ok([...filesOf.values()].some((s) => s.size > 1), 'some layer spans two shards');
    const sizes = info.files.map((f) => info.tensors.filter((t) => t.file === f).reduce((a, t) => a + t.bytes, 0));
    assert.ok(Math.max(...sizes) < 2 * Math.min(...sizes), `shard sizes ${sizes}`);
  });

  test('rewriting a folder with fewer shards leaves no stale shard or index behind', () => {
    const a = freshCheckpoint({ arch: 'qwen2_5_vl', shards: 3 });
    writeCheckpoint(a.dir, { arch: 'qwen2_5_vl', shards: 1 });
    assert.deepEqual(readdirSync(a.dir).filter((f) => f.includes('safetensors')), ['model.safetensors']);
  });

  test('the CLI writes a checkpoint the engine config reader accepts', () => {
    const dir = join(freshCheckpoint({ arch: 'qwen2_vl', weights: false }).dir, 'cli');
    const out = execFileSync(process.execPath, [join(projectRoot, 'dist', 'tools', 'checkpoint.js'), '--arch', 'qwen2_vl', '--dtype', 'BF16', '--shards', '2', '--out', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(out, /wrote 2 file\(s\)/);
    assert.ok(readdirSync(dir).includes('model.safetensors.index.json'));
    assert.equal(asQwen2VLConfig(loadModelConfig(dir)).architecture, 'Qwen2VLForConditionalGeneration');
    assert.equal(WeightStore.open(dir).get('model.norm.weight').dtype, 'BF16');
  });
});
