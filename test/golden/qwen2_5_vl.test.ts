import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModelConfig } from '../../src/models/registry.js';
import { loadModel } from '../../src/models/registry.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import { loadImageProcessor } from '../../src/models/registry.js';
import { caseImages, goldenCase, goldenCaseNames, maxAbsDiff } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';
import { greedyAfter, prefillPrompt } from '../helpers/prefill.js';

/**
 * Every token-level golden case, run through the model directly: preprocessing
 * (resizing, pixel budgets), 3-axis positions, image embeddings (several windows,
 * several images), last-position logits and the greedy tokens (EOS not a stop).
 */
for (const family of ['qwen2_5_vl', 'qwen2_vl']) {
  test(`${family}: every golden case matches the reference`, async (t) => {
    const modelDir = fixturePath(`golden/${family}/model`);
    const config = loadModelConfig(modelDir);
    const processor = loadImageProcessor(modelDir, config);
    const model = await loadModel(modelDir, config);
    try {
      for (const [set, name] of goldenCaseNames(family)) {
        await t.test(`${set}/${name}`, async () => {
          const gc = goldenCase(family, name, set);
          const o = gc.oracle;
          const budget = { maxPixels: o.image_processor_overrides?.max_pixels, minPixels: o.image_processor_overrides?.min_pixels };
          const processed = [];
          for (const f of caseImages(gc.dir)) processed.push(processor.process(await decodeImage(readFileSync(f)), budget));
          assert.deepEqual(processed.map((p) => p.grid), o.image_grid_thw ?? []);
          if (processed.length > 0 && gc.has('pixel_values')) {
            const all = new Float32Array(processed.reduce((a, p) => a + p.pixelValues.length, 0));
            let off = 0;
            for (const p of processed) (all.set(p.pixelValues, off), (off += p.pixelValues.length));
            assert.equal(maxAbsDiff(all, gc.tensor('pixel_values')), 0, 'pixel values');
          }

          const ids: number[] = o.input_ids;
          const run = await prefillPrompt(model, config, ids, processed, o.generated_ids.length);
          const { pos } = run;
          for (let a = 0; a < 3; a++) assert.deepEqual(Array.from(pos.positions.subarray(a * ids.length, (a + 1) * ids.length)), o.position_ids[a]);
          assert.equal(pos.next - ids.length, o.rope_deltas[0]);
          if (run.embedsCount > 0) assert.ok(maxAbsDiff(run.extra, gc.tensor('image_embeds')) < 1e-4, 'image embeddings');
          const refLast: number[] = o.logits_last ?? Array.from(gc.tensor('generate_step_logits').subarray(0, config.text.vocabSize));
          assert.ok(maxAbsDiff(run.logits, refLast) < 1e-4, `last logits differ by ${maxAbsDiff(run.logits, refLast)}`);
          const out = await greedyAfter(model, run, ids.length, o.generated_ids.length);
          assert.deepEqual(out, o.generated_ids);
        });
      }
    } finally {
      await model.release();
    }
  });
}
