import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CLIP_INPUTS, buildClipVisionGraph } from '../../src/models/llava/clipVision.js';
import { parseClipVisionConfig } from '../../src/models/clipTower.js';
import { GraphSession } from '../../src/runtime/session.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { goldenCase, goldenCaseNames, maxAbsDiff } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';

test('LLaVA-1.5: the CLIP tower (hidden_states[-2], class token dropped) and projector give the reference image features', async () => {
  const dir = fixturePath('golden/llava/model');
  const config = JSON.parse(readFileSync(`${dir}/config.json`, 'utf8'));
  const cfg = parseClipVisionConfig(config.vision_config);
  const { g, w } = buildClipVisionGraph(WeightStore.open(dir), cfg, { layer: config.vision_feature_layer, dropClassToken: true }, { prefix: 'multi_modal_projector', textHidden: config.text_config.hidden_size });
  const session = await GraphSession.create(g, w);
  let cases = 0;
  try {
    for (const [set, name] of goldenCaseNames('llava')) {
      const gc = goldenCase('llava', name, set);
      if (!gc.has('pixel_values') || !gc.has('image_features')) continue;
      const pixels = gc.tensor('pixel_values');
      const n = pixels.length / (3 * cfg.imageSize * cfg.imageSize);
      const out = (await session.run({ [CLIP_INPUTS.pixels]: { data: pixels, dims: [n, 3, cfg.imageSize, cfg.imageSize] } }))[CLIP_INPUTS.output]!;
      const want = gc.tensor('image_features');
      assert.equal(out.data.length, want.length, `${set}/${name}: feature count`);
      const d = maxAbsDiff(out.data, want);
      assert.ok(d < 1e-4, `${set}/${name}: image features differ by ${d}`);
      cases++;
    }
  } finally {
    await session.release();
  }
  assert.ok(cases >= 3, `${cases} cases checked`);
});
