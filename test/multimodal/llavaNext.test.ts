import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeImage } from '../../src/multimodal/decode.js';
import { llavaNextTokens, loadLlavaNextProcessorConfig, preprocessLlavaNext, selectBestResolution, unpadRegion } from '../../src/models/llava/anyresProcessing.js';
import { caseImages, goldenCase, goldenCaseNames } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';

const PINS: Array<[number, number]> = [[84, 168], [168, 84], [168, 168], [252, 84], [84, 252]];

test('anyres choices as transformers makes them: best resolution ties keep the first, unpadding rounds and keeps the odd line', () => {
  assert.deepEqual(selectBestResolution(84, 84, PINS), [84, 168]);
  assert.deepEqual(selectBestResolution(50, 200, PINS), [84, 252]);
  assert.deepEqual(unpadRegion(6, 18, 50, 200), [1, 4, 0, 18]);
  // A 130x90 image (h 90, w 130) on an 8x12 grid: new width int(11.56) = 11, pad 0, all 12 columns kept.
  assert.deepEqual(unpadRegion(8, 12, 90, 130), [0, 8, 0, 12]);
});

// [family, model folder, features per tile side, OneVision's max tiles]
const FAMILIES: Array<[string, string, number, number | null]> = [
  ['llava_next_mistral', 'golden-extra/llava_next_mistral/model', 6, null],
  ['llava_next_vicuna', 'golden-extra/llava_next_vicuna/model', 6, null],
  ['llava_next_llama3', 'golden-extra/llava_next_llama3/model', 6, null],
  ['llava_onevision', 'golden/llava_onevision/model', 4, 9],
];
for (const [family, model, g, maxPatches] of FAMILIES) {
  test(`${family}: the anyres image processor's pixel values and image token counts equal the reference's`, async () => {
    const dir = fixturePath(model);
    const cfg = loadLlavaNextProcessorConfig(dir);
    let images = 0;
    for (const [set, name] of goldenCaseNames(family)) {
      const gc = goldenCase(family, name, set);
      const files = caseImages(gc.dir);
      if (files.length === 0) continue;
      const want = gc.tensor('pixel_values');
      const slots = gc.oracle.pixel_values_shape as number[];
      const per = 3 * cfg.crop.height * cfg.crop.width;
      for (const [i, f] of files.entries()) {
        const img = await decodeImage(readFileSync(f));
        const r = preprocessLlavaNext(img, cfg);
        const ref = want.subarray(i * slots[1]! * per, i * slots[1]! * per + r.pieces * per);
        let diff = 0;
        for (let k = 0; k < ref.length; k++) if (r.pixelValues[k] !== ref[k]) diff++;
        assert.equal(diff, 0, `${name} image ${i}: ${diff} values differ`);
        assert.equal(llavaNextTokens(img.height, img.width, cfg, g, maxPatches), gc.oracle.num_image_tokens[i], `${name} image ${i}: token count`);
        images++;
      }
    }
    assert.ok(images >= 3, `${images} images checked`);
  });
}

test('anyres image budget: a token cap or pixel cap picks a smaller canvas; with none that fits, the fewest-token canvas', async () => {
  const { loadImageProcessor, loadModelConfig } = await import('../../src/models/registry.js');
  for (const model of ['golden-extra/llava_next_mistral/model', 'golden/llava_onevision/model']) {
    const dir = fixturePath(model);
    const p = loadImageProcessor(dir, loadModelConfig(dir));
    const img = { width: 240, height: 150, data: new Uint8Array(240 * 150 * 3).map((_, i) => (i * 37) % 251) };
    const full = p.process(img);
    const capped = p.process(img, { maxTokens: full.numTokens - 1 });
    assert.ok(capped.numTokens < full.numTokens, `${model}: ${capped.numTokens} < ${full.numTokens}`);
    // Pixels follow the chosen canvas: base image + rows * cols tiles.
    const piece = full.pixelValues.length / (1 + full.grid[2]! * full.grid[3]!);
    assert.equal(capped.pixelValues.length, piece * (1 + capped.grid[2]! * capped.grid[3]!));
    const tiny = p.process(img, { maxTokens: 1 });
    const low = p.process(img, { maxPixels: 1 });
    assert.deepEqual(tiny.grid, low.grid, 'nothing fits: both caps fall back to the same fewest-token canvas');
    assert.ok(tiny.numTokens <= capped.numTokens);
    assert.deepEqual(p.process(img, { maxTokens: full.numTokens }).grid, full.grid, 'a cap the image already meets changes nothing');
  }
});
