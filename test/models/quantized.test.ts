import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { QuantMode } from '../../src/engine/memoryPlan.js';
import { loadModelConfig, modelGraphs } from '../../src/models/registry.js';
import { ModelLoadOptions, VisionLanguageModel } from '../../src/models/model.js';
import { loadModel } from '../../src/models/registry.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import { ProcessedImage } from '../../src/multimodal/processor.js';
import { loadImageProcessor } from '../../src/models/registry.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { argmax, caseImages, goldenCase, goldenCaseNames, maxAbsDiff } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';
import { greedyAfter, prefillPrompt } from '../helpers/prefill.js';
import { withEngine } from '../helpers/checkpoints.js';
import { PackedFormat, dequantizedCopy, packedCopies } from '../helpers/quantizedModels.js';

interface CaseInput {
  name: string;
  ids: number[];
  processed: ProcessedImage[];
  steps: number;
  generated: number[];
}

/** The golden cases of a family with their images preprocessed. */
async function caseInputs(family: string): Promise<CaseInput[]> {
  const modelDir = fixturePath(`golden/${family}/model`);
  const processor = loadImageProcessor(modelDir, loadModelConfig(modelDir));
  const out: CaseInput[] = [];
  for (const [set, name] of goldenCaseNames(family)) {
    const gc = goldenCase(family, name, set);
    const o = gc.oracle;
    const budget = { maxPixels: o.image_processor_overrides?.max_pixels, minPixels: o.image_processor_overrides?.min_pixels };
    const processed = [];
    for (const f of caseImages(gc.dir)) processed.push(processor.process(await decodeImage(readFileSync(f)), budget));
    out.push({ name: `${set}/${name}`, ids: o.input_ids, processed, steps: o.generated_ids.length, generated: o.generated_ids });
  }
  return out;
}

async function withModel<T>(dir: string, opts: ModelLoadOptions, fn: (m: VisionLanguageModel) => Promise<T>): Promise<T> {
  const config = loadModelConfig(dir);
  const m = await loadModel(WeightStore.open(dir, config.raw.quantization_config), config, opts);
  try {
    return await fn(m);
  } finally {
    await m.release();
  }
}

/** Last-prompt logits, image embeddings and greedy tokens of every case. */
async function runCases(dir: string, opts: ModelLoadOptions, cases: CaseInput[]) {
  const config = loadModelConfig(dir);
  return withModel(dir, opts, async (m) => {
    const out = [];
    for (const c of cases) {
      const run = await prefillPrompt(m, config, c.ids, c.processed, c.steps);
      out.push({ logits: run.logits, embeds: run.extra, tokens: await greedyAfter(m, run, c.ids.length, c.steps) });
    }
    return out;
  });
}

function relError(a: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

for (const family of ['qwen2_5_vl', 'qwen2_vl']) {
  for (const mode of ['int8', 'int4'] as QuantMode[]) {
    test(`${family} ${mode}: logits equal float32 with the dequantized weights (the quantization is what it claims)`, async () => {
      const modelDir = fixturePath(`golden/${family}/model`);
      const cases = await caseInputs(family);
      const { dir, replaced } = dequantizedCopy(modelDir, mode);
      // Every linear of both towers, the embedding table and the output projection.
      const names = [...replaced.keys()];
      assert.ok(names.some((n) => /embed_tokens/.test(n)) && names.some((n) => /lm_head/.test(n)), 'embedding and head quantized');
      assert.ok(names.some((n) => /mlp\.down_proj/.test(n) && !/visual/.test(n)) && names.some((n) => /visual.*qkv/.test(n)), 'text and vision linears quantized');
      assert.equal([...replaced].filter(([n]) => /visual/.test(n)).every(([, b]) => b === 8), true, 'vision linears are int8');
      assert.equal([...replaced].filter(([n]) => /layers\.\d+\.mlp/.test(n) && !/visual/.test(n)).every(([, b]) => b === (mode === 'int4' ? 4 : 8)), true);
      const quantized = await runCases(modelDir, { quantization: mode, accuracyLevel: 0 }, cases);
      const reference = await runCases(dir, {}, cases);
      cases.forEach((c, i) => {
        assert.ok(maxAbsDiff(quantized[i]!.embeds, reference[i]!.embeds) < 1e-4, `${c.name}: image embeddings differ by ${maxAbsDiff(quantized[i]!.embeds, reference[i]!.embeds)}`);
        assert.ok(maxAbsDiff(quantized[i]!.logits, reference[i]!.logits) < 1e-4, `${c.name}: logits differ by ${maxAbsDiff(quantized[i]!.logits, reference[i]!.logits)}`);
        assert.deepEqual(quantized[i]!.tokens, reference[i]!.tokens, c.name);
      });
    });
  }

  test(`${family}: int8 (int8 activations, the default) against float32 keeps the top token of every golden case`, async (t) => {
    const modelDir = fixturePath(`golden/${family}/model`);
    const cases = await caseInputs(family);
    const float = await runCases(modelDir, {}, cases);
    const int8 = await runCases(modelDir, { quantization: 'int8' }, cases);
    const int4 = await runCases(modelDir, { quantization: 'int4' }, cases);
    cases.forEach((c, i) => {
      assert.deepEqual(float[i]!.tokens, c.generated, `${c.name}: float32 is the reference's`);
      assert.equal(argmax(int8[i]!.logits), argmax(float[i]!.logits), `${c.name}: top token after the prompt`);
      const agree = (q: number[]) => q.filter((tok, j) => tok === c.generated[j]).length;
      t.diagnostic(
        `${c.name}: logits relative error int8 ${relError(int8[i]!.logits, float[i]!.logits).toFixed(4)}, int4 ${relError(int4[i]!.logits, float[i]!.logits).toFixed(4)}; ` +
          `greedy tokens as float32: int8 ${agree(int8[i]!.tokens)}/${c.steps}, int4 ${agree(int4[i]!.tokens)}/${c.steps}`,
      );
    });
  });
}

for (const format of ['awq', 'gptq4', 'gptq4-asym-gptqmodel', 'gptq8'] as PackedFormat[]) {
  test(`${format} checkpoint: logits equal float32 with the weights its integer codes stand for`, async () => {
    const family = 'qwen2_5_vl';
    const cases = await caseInputs(family);
    const { packed, reference, layers } = packedCopies(fixturePath(`golden/${family}/model`), format);
    assert.ok(layers >= 14, `${layers} packed linears`);
    const got = await runCases(packed, { accuracyLevel: 0 }, cases);
    const want = await runCases(reference, {}, cases);
    cases.forEach((c, i) => {
      assert.ok(maxAbsDiff(got[i]!.logits, want[i]!.logits) < 1e-4, `${c.name}: logits differ by ${maxAbsDiff(got[i]!.logits, want[i]!.logits)}`);
      assert.deepEqual(got[i]!.tokens, want[i]!.tokens, c.name);
    });
  });
}

test('the Engine serves an AWQ checkpoint (--quantization awq asserts it) and refuses awq for a float one', async () => {
  const { packed } = packedCopies(fixturePath('golden/qwen2_5_vl/model'), 'awq');
  const r = await withEngine(packed, async (e) => {
    assert.equal(e.info.quantization, 'none', 'the float parts stay float32 where they fit');
    return e.generate({ messages: [{ role: 'user', content: 'Hello' }], sampling: { maxNewTokens: 4, temperature: 0, ignoreEos: true } });
  }, { quantization: 'awq' });
  assert.equal(r.tokenIds.length, 4);
  await assert.rejects(
    withEngine(fixturePath('golden/qwen2_5_vl/model'), async () => null, { quantization: 'awq' }),
    /--quantization awq: .* is not an AWQ checkpoint \(config\.json quantization_config: none\)/,
  );
});

/** Greedy tokens and their top-5 logprobs for every golden chat case of a DeepSeek-VL2 model. */
async function deepseekRuns(dir: string, opts: Partial<import('../../src/engine/engine.js').EngineLoadOptions>) {
  const spec = JSON.parse(readFileSync(fixturePath('golden/deepseek_vl2/chat_cases.json'), 'utf8')) as { cases: Array<{ name: string; messages: unknown[] }> };
  return withEngine(dir, async (e) => {
    const out = [];
    for (const c of spec.cases) {
      const r = await e.generate({ messages: c.messages as never, sampling: { maxNewTokens: 8, temperature: 0, ignoreEos: true, topLogprobs: 5 } });
      out.push({ name: c.name, tokens: r.tokenIds, logprobs: r.logprobs!.map((l) => l.top.map((t) => t.logprob)) });
    }
    return out;
  }, opts);
}

for (const mode of ['int8', 'int4'] as QuantMode[]) {
  test(`deepseek_vl2 ${mode}: routed experts run quantized (QMoE) and equal float32 with the dequantized weights`, async () => {
    const modelDir = fixturePath('golden/deepseek_vl2/model');
    const { dir, replaced } = dequantizedCopy(modelDir, mode);
    const experts = [...replaced].filter(([n]) => /mlp\.experts\.\d+\.(gate|up|down)_proj/.test(n));
    assert.ok(experts.length > 0 && experts.every(([, b]) => b === (mode === 'int4' ? 4 : 8)), `${experts.length} expert weights quantized to ${mode}`);
    const text = modelGraphs(WeightStore.open(modelDir), loadModelConfig(modelDir), { quantization: mode }).text as unknown as { g: { encode(): Uint8Array } };
    assert.ok(Buffer.from(text.g.encode()).toString('latin1').includes('QMoE'), 'the decoder uses the quantized MoE op');
    const got = await deepseekRuns(modelDir, { quantization: mode, accuracyLevel: 0 });
    const want = await deepseekRuns(dir, {});
    got.forEach((g, i) => {
      assert.deepEqual(g.tokens, want[i]!.tokens, g.name);
      const diff = Math.max(...g.logprobs.flatMap((row, j) => row.map((v, k) => Math.abs(v - want[i]!.logprobs[j]![k]!))));
      assert.ok(diff < 1e-4, `${g.name}: top-5 logprobs differ by ${diff}`);
    });
  });
}
