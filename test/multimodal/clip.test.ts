import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeImage } from '../../src/multimodal/decode.js';
import { loadClipProcessorConfig, parseClipProcessorConfig, preprocessClip, shortestEdgeSize } from '../../src/models/llava/clipProcessing.js';
import { caseImages, goldenCase, goldenCaseNames } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';

test('shortest-edge resize sizes as transformers computes them (long side truncated)', () => {
  assert.deepEqual(shortestEdgeSize(40, 60, 84), [84, 126]);
  assert.deepEqual(shortestEdgeSize(60, 320, 84), [84, 448]);
  assert.deepEqual(shortestEdgeSize(200, 90, 84), [186, 84]);
  assert.deepEqual(shortestEdgeSize(336, 336, 336), [336, 336]);
});

test('CLIPImageProcessor: pixel values bit-identical to the reference for every LLaVA-1.5 case with images', async () => {
  const cfg = loadClipProcessorConfig(fixturePath('golden/llava/model'));
  let images = 0;
  for (const [set, name] of goldenCaseNames('llava')) {
    const gc = goldenCase('llava', name, set);
    const files = caseImages(gc.dir);
    if (files.length === 0 || !gc.has('pixel_values')) continue;
    const want = gc.tensor('pixel_values');
    const plane = 3 * cfg.crop.height * cfg.crop.width;
    for (const [i, f] of files.entries()) {
      const got = preprocessClip(await decodeImage(readFileSync(f)), cfg).pixelValues;
      const ref = want.subarray(i * plane, (i + 1) * plane);
      let diff = 0;
      for (let k = 0; k < plane; k++) if (got[k] !== ref[k]) diff++;
      assert.equal(diff, 0, `${set}/${name} image ${i}: ${diff} of ${plane} values differ`);
      images++;
    }
  }
  assert.ok(images >= 6, `${images} images checked`);
});

test('an image smaller than the crop is centred on zero padding (normalised black), the odd pixel on top and left', () => {
  const cfg = parseClipProcessorConfig({ size: { height: 3, width: 2 }, crop_size: { height: 6, width: 5 }, do_normalize: false, do_rescale: false });
  const img = { width: 2, height: 3, data: new Uint8Array(18).fill(200) };
  const { pixelValues } = preprocessClip(img, cfg);
  // Rows 2..4 and columns 2..3 hold the image (ceil(3/2) = 2 rows and ceil(3/2) = 2 columns of padding first).
  const red = Array.from({ length: 6 }, (_, y) => Array.from(pixelValues.subarray(y * 5, y * 5 + 5)));
  assert.deepEqual(red, [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 200, 200, 0], [0, 0, 200, 200, 0], [0, 0, 200, 200, 0], [0, 0, 0, 0, 0]]);
});
