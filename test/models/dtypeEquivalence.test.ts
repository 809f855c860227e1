/**
 * The same random weights written as F32 (one file), BF16 (three shards or one
 * file) and F16 give the same model: BF16/F16 weights are cast to float32 at load,
 * so they must match exactly an F32 checkpoint holding the BF16/F16-rounded values;
 * and splitting into shards must change nothing at all.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightStore } from '../../src/runtime/weightStore.js';
import type { Arch, CheckpointOptions } from '../../tools/checkpoint.js';
import {
  GREEDY_8,
  cleanupCheckpoints,
  dataUri,
  imageMessages,
  lastTokenLogits,
  makePng,
  maxAbsDiff,
  promptIds,
  tinyCheckpoint,
  withEngine,
} from '../helpers/checkpoints.js';
import type { GenerateResult } from '../../src/engine/engine.js';

after(cleanupCheckpoints);

interface Outcome {
  logits: Float32Array;
  text: GenerateResult;
  image: GenerateResult;
}

const PROMPT = promptIds(12);

async function run(dir: string, imageUri: string): Promise<Outcome> {
  const logits = await lastTokenLogits(dir, PROMPT);
  return withEngine(dir, async (engine) => ({
    logits,
    text: await engine.generate({ inputIds: PROMPT, sampling: GREEDY_8 }),
    image: await engine.generate({ messages: imageMessages(imageUri, 'Describe it.'), sampling: GREEDY_8 }),
  }));
}

/** Same tokens; chosen and top-5 logprobs within `tol` (same top-5 ids). */
function assertSameGeneration(a: GenerateResult, b: GenerateResult, tol: number, what: string): void {
  assert.equal(a.tokenIds.length, 8, what);
  assert.deepEqual(b.tokenIds, a.tokenIds, `${what}: greedy tokens`);
  assert.equal(b.usage.promptTokens, a.usage.promptTokens, what);
  a.logprobs!.forEach((la, i) => {
    const lb = b.logprobs![i]!;
    assert.ok(Math.abs(la.logprob - lb.logprob) <= tol, `${what} step ${i}: logprob ${la.logprob} vs ${lb.logprob}`);
    assert.deepEqual(lb.top.map((t) => t.tokenId), la.top.map((t) => t.tokenId), `${what} step ${i}: top-5 ids`);
    la.top.forEach((t, j) => assert.ok(Math.abs(t.logprob - lb.top[j]!.logprob) <= tol, `${what} step ${i} top ${j}: ${t.logprob} vs ${lb.top[j]!.logprob}`));
  });
}

function assertIdentical(a: Outcome, b: Outcome, what: string): void {
  assert.deepEqual(Array.from(b.logits), Array.from(a.logits), `${what}: last-token logits`);
  assert.deepEqual(b.text.tokenIds, a.text.tokenIds, `${what}: text tokens`);
  assert.deepEqual(b.text.logprobs, a.text.logprobs, `${what}: text logprobs`);
  assert.deepEqual(b.image.tokenIds, a.image.tokenIds, `${what}: image tokens`);
  assert.deepEqual(b.image.logprobs, a.image.logprobs, `${what}: image logprobs`);
}

for (const arch of ['qwen2_5_vl', 'qwen2_vl'] as Arch[]) {
  describe(`${arch}: dtype and sharding equivalence`, () => {
    const base: CheckpointOptions = { arch, seed: 7 };
    const out: Record<string, Outcome> = {};
    let imageUri = '';

    before(async () => {
      // 140x112: a 10x8 patch grid, two Qwen2.5-VL windows side by side (one partial).
      imageUri = dataUri(await makePng(140, 112, 3));
      const variants: Record<string, CheckpointOptions> = {
        f32: { ...base, dtype: 'F32' },
        f32bf16: { ...base, dtype: 'F32', roundTo: 'BF16' },
        bf16x3: { ...base, dtype: 'BF16', shards: 3 },
        bf16: { ...base, dtype: 'BF16' },
        f32f16: { ...base, dtype: 'F32', roundTo: 'F16' },
        f16: { ...base, dtype: 'F16' },
      };
      for (const [k, opts] of Object.entries(variants)) out[k] = await run(tinyCheckpoint(opts).dir, imageUri);
    });

    test('the checkpoints hold what they say: dtypes, shards, equal values after rounding', () => {
      const bf16x3 = WeightStore.open(tinyCheckpoint({ ...base, dtype: 'BF16', shards: 3 }).dir);
      const f32bf16 = WeightStore.open(tinyCheckpoint({ ...base, dtype: 'F32', roundTo: 'BF16' }).dir);
      const f16 = WeightStore.open(tinyCheckpoint({ ...base, dtype: 'F16' }).dir);
      const f32f16 = WeightStore.open(tinyCheckpoint({ ...base, dtype: 'F32', roundTo: 'F16' }).dir);
      assert.equal(new Set(bf16x3.names().map((n) => bf16x3.get(n).file)).size, 3);
      for (const name of bf16x3.names()) {
        assert.equal(bf16x3.get(name).dtype, 'BF16');
        assert.equal(f32bf16.get(name).dtype, 'F32');
        assert.deepEqual(bf16x3.readFloat32(name), f32bf16.readFloat32(name), name);
        assert.equal(f16.get(name).dtype, 'F16');
        assert.deepEqual(f16.readFloat32(name), f32f16.readFloat32(name), name);
      }
    });

    test('BF16 in 3 shards = F32 holding the BF16-rounded values: same greedy tokens, logits within 1e-5', () => {
      const d = maxAbsDiff(out.bf16x3!.logits, out.f32bf16!.logits);
      assert.ok(d <= 1e-5, `last-token logits differ by ${d}`);
      assertSameGeneration(out.f32bf16!.text, out.bf16x3!.text, 1e-5, 'text prompt');
      assertSameGeneration(out.f32bf16!.image, out.bf16x3!.image, 1e-5, 'image prompt');
    });

    test('F16 = F32 holding the F16-rounded values: same greedy tokens, logits within 1e-5', () => {
      const d = maxAbsDiff(out.f16!.logits, out.f32f16!.logits);
      assert.ok(d <= 1e-5, `last-token logits differ by ${d}`);
      assertSameGeneration(out.f32f16!.text, out.f16!.text, 1e-5, 'text prompt');
      assertSameGeneration(out.f32f16!.image, out.f16!.image, 1e-5, 'image prompt');
    });

    test('BF16 in 3 shards and in one file give identical logits, tokens and logprobs', () => {
      assertIdentical(out.bf16!, out.bf16x3!, 'sharded vs single file');
    });

    test('the rounding is what differs: F32, BF16 and F16 versions of the same weights are close but not equal', () => {
      const range = Math.max(...out.f32!.logits) - Math.min(...out.f32!.logits);
      for (const k of ['f32bf16', 'f32f16']) {
        const d = maxAbsDiff(out.f32!.logits, out[k]!.logits);
        assert.ok(d > 0, `${k}: rounding had no effect`);
        assert.ok(d < 0.05 * range, `${k}: logits moved by ${d} (range ${range}): not the same weights?`);
      }
      assert.ok(out.f32!.image.usage.promptTokens > 20, 'the image took its 20 placeholder tokens');
    });
  });
}
