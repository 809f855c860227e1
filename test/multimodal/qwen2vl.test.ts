import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ImageError, ModelLoadError } from '../../src/errors.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import {
  loadQwen2VLProcessorConfig, parseQwen2VLProcessorConfig, preprocessQwen2VL, pyRound, smartResize,
} from '../../src/models/qwen2_vl/imageProcessing.js';
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from '../../src/runtime/safetensors.js';
import { FIXTURES, pilIndex, readPil } from './fixtures.js';

const GOLDEN = `${FIXTURES}golden/`;

const goldenCases = [
  { model: 'qwen2_5_vl', name: 'one_image_84x56' },
  { model: 'qwen2_5_vl', name: 'chat_one_image' },
  { model: 'qwen2_vl', name: 'chat_e_public_one_image' },
];

function goldenTensor(file: string, name: string): Float32Array {
  const loc = readSafetensorsHeader(file).find((t) => t.name === name);
  assert.ok(loc, `${name} in ${file}`);
  return toFloat32(readTensorBytes(loc), loc.dtype);
}

for (const g of goldenCases) {
  test(`pixel_values equal transformers' for ${g.model}/${g.name}`, async () => {
    const dir = `${GOLDEN}${g.model}/cases/${g.name}/`;
    const cfg = loadQwen2VLProcessorConfig(`${GOLDEN}${g.model}/model`);
    const oracle = JSON.parse(readFileSync(`${dir}oracle.json`, 'utf8'));
    const img = await decodeImage(new Uint8Array(readFileSync(`${dir}image0.png`)));
    const out = preprocessQwen2VL(img, cfg);
    assert.deepEqual(out.gridThw, oracle.image_grid_thw[0]);
    const expected = goldenTensor(`${dir}tensors.safetensors`, 'pixel_values');
    assert.equal(out.pixelValues.length, expected.length);
    let maxDiff = 0;
    let differing = 0;
    for (let i = 0; i < expected.length; i++) {
      const d = Math.abs(out.pixelValues[i]! - expected[i]!);
      if (d !== 0) differing++;
      if (d > maxDiff) maxDiff = d;
    }
    assert.equal(differing, 0, `${differing} values differ, max abs diff ${maxDiff}`);
    // one <|image_pad|> per merged 2x2 block
    const [t, h, w] = out.gridThw;
    assert.equal(out.numImageTokens, (t * h * w) / 4);
    assert.equal(out.numImageTokens, oracle.input_ids.filter((id: number) => id === 293).length);
  });
}

test('decoded RGB equals the reference convert("RGB") bytes (qwen2_vl golden)', async () => {
  const dir = `${GOLDEN}qwen2_vl/cases/chat_e_public_one_image/`;
  const loc = readSafetensorsHeader(`${dir}tensors.safetensors`).find((t) => t.name === 'image0_rgb_uint8_after_convert_rgb');
  assert.ok(loc);
  const img = await decodeImage(new Uint8Array(readFileSync(`${dir}image0.png`)));
  assert.deepEqual(Buffer.from(img.data), readTensorBytes(loc));
});

// Resized cases: pixel_values produced by replaying transformers 4.50's slow
// Qwen2VLImageProcessor in numpy + Pillow (fixture generator); compared by SHA-256 of the
// little-endian float32 bytes, i.e. bit for bit.
for (const c of pilIndex.qwen2vl) {
  test(`pixel_values bit-exact after resize: ${c.input} max_pixels=${c.maxPixels}`, async () => {
    const cfg = loadQwen2VLProcessorConfig(`${GOLDEN}qwen2_5_vl/model`);
    const img = await decodeImage(readPil(c.input));
    const out = preprocessQwen2VL(img, cfg, { minPixels: c.minPixels, maxPixels: c.maxPixels });
    assert.deepEqual(out.gridThw, c.gridThw);
    assert.equal(out.pixelValues.length, c.shape[0] * c.shape[1]);
    assert.deepEqual(Array.from(out.pixelValues.subarray(0, 4)), c.first4);
    const bytes = Buffer.from(out.pixelValues.buffer, out.pixelValues.byteOffset, out.pixelValues.byteLength);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), c.sha256);
  });
}

test('pyRound rounds half to even like Python', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.5001, 22.5].map(pyRound), [0, 2, 2, 4, 0, -2, 2, 3, 22]);
});

test('smartResize matches transformers smart_resize', () => {
  // [height, width, factor, min_pixels, max_pixels, expected_h, expected_w], computed with
  // the Python function (transformers 4.50 plus the newer max(factor, ...) clamp).
  const cases: number[][] = [
    [70, 630, 28, 3136, 12845056, 56, 616], // both sides hit .5: half-to-even rounds down
    [960, 1280, 28, 3136, 12845056, 952, 1288],
    [56, 84, 28, 3136, 12845056, 56, 84],
    [112, 168, 28, 3136, 50176, 112, 168],
    [3000, 4000, 28, 3136, 12845056, 2996, 4004],
    [960, 1280, 28, 3136, 50176, 168, 252],
    [30, 40, 28, 3136, 12845056, 56, 84],
    [28, 5600, 28, 3136, 12845056, 28, 5600],
    [42, 126, 28, 3136, 12845056, 56, 112],
    [28, 5000, 28, 3136, 6272, 28, 1036], // 4.50 would give height 0 here
    [1080, 1920, 28, 3136, 1003520, 728, 1316],
    [1080, 1920, 28, 200704, 1003520, 728, 1316],
    [2160, 3840, 28, 3136, 12845056, 2156, 3836],
    [500, 333, 28, 3136, 1003520, 504, 336],
    [4000, 30, 28, 3136, 1003520, 4004, 28],
    [999, 999, 28, 3136, 1003520, 980, 980],
    [1000, 700, 32, 4096, 16777216, 992, 704],
    [1400, 1400, 28, 3136, 1003520, 980, 980],
    [1977, 4882, 28, 3136, 1003520, 616, 1568],
    [4975, 3911, 28, 3136, 12845056, 4032, 3164],
    [135, 3871, 28, 200704, 12845056, 140, 3864],
    [1947, 1598, 28, 200704, 12845056, 1960, 1596],
    [4530, 3930, 28, 200704, 12845056, 3836, 3332],
    [1261, 1927, 28, 3136, 12845056, 1260, 1932],
    [3222, 152, 28, 3136, 50176, 1008, 28],
    [4870, 378, 28, 200704, 50176, 784, 56],
    [2235, 3900, 28, 200704, 12845056, 2240, 3892],
    [3525, 3263, 28, 200704, 50176, 224, 196],
    [3022, 826, 28, 3136, 50176, 420, 112],
    [4082, 1805, 28, 200704, 12845056, 4088, 1792],
  ];
  for (const [h, w, f, mn, mx, eh, ew] of cases) {
    assert.deepEqual(smartResize(h!, w!, f, mn, mx), [eh, ew], `${h}x${w} factor ${f} [${mn}, ${mx}]`);
  }
});

test('smartResize rejects tiny images and aspect ratios above 200', () => {
  assert.throws(() => smartResize(27, 100), (e: unknown) => e instanceof ImageError && /too small/.test(e.message));
  assert.throws(() => smartResize(100, 10), ImageError);
  assert.throws(() => smartResize(28, 5601), (e: unknown) => e instanceof ImageError && /aspect ratio/.test(e.message));
  assert.throws(() => smartResize(5601, 28), ImageError);
});

test('70x630 image gets a 2x22 grid of merged tokens (half-to-even)', () => {
  const cfg = parseQwen2VLProcessorConfig({});
  const img = { width: 630, height: 70, data: new Uint8Array(630 * 70 * 3).fill(128) };
  const out = preprocessQwen2VL(img, cfg);
  assert.deepEqual(out.gridThw, [1, 4, 44]);
  assert.equal(out.numImageTokens, 44);
  assert.equal(out.pixelValues.length, 4 * 44 * 3 * 2 * 14 * 14);
});

test('preprocessor config: defaults, size dict, min/max_pixels precedence, errors', () => {
  const d = parseQwen2VLProcessorConfig({});
  assert.equal(d.minPixels, 3136);
  assert.equal(d.maxPixels, 1003520);
  assert.deepEqual([d.patchSize, d.temporalPatchSize, d.mergeSize], [14, 2, 2]);
  assert.deepEqual([d.doResize, d.doRescale, d.doNormalize], [true, true, true]);
  assert.equal(d.rescaleFactor, 1 / 255);
  const s = parseQwen2VLProcessorConfig({ size: { shortest_edge: 1000, longest_edge: 2000 } });
  assert.deepEqual([s.minPixels, s.maxPixels], [1000, 2000]);
  const both = parseQwen2VLProcessorConfig({ size: { shortest_edge: 1000, longest_edge: 2000 }, max_pixels: 5000 });
  assert.deepEqual([both.minPixels, both.maxPixels], [1000, 5000]);
  const scalar = parseQwen2VLProcessorConfig({ image_mean: 0.5, image_std: 0.5 });
  assert.deepEqual(scalar.imageMean, [0.5, 0.5, 0.5]);
  assert.throws(() => parseQwen2VLProcessorConfig({ size: { height: 10 } }), ModelLoadError);
  assert.throws(() => parseQwen2VLProcessorConfig({ patch_size: 0 }), ModelLoadError);
  assert.throws(() => parseQwen2VLProcessorConfig({ resample: 2 }), ModelLoadError);
  assert.throws(() => parseQwen2VLProcessorConfig({ image_mean: [1, 2] }), ModelLoadError);
  assert.throws(() => loadQwen2VLProcessorConfig('/nonexistent/model'), ModelLoadError);
  const real = loadQwen2VLProcessorConfig(`${GOLDEN}qwen2_vl/model`);
  assert.equal(real.maxPixels, 50176);
});

test('rescale/normalise flags: without them the values are the raw levels', () => {
  const cfg = { ...parseQwen2VLProcessorConfig({}), doResize: false, doRescale: false, doNormalize: false };
  const img = { width: 28, height: 28, data: Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => i % 251) };
  const out = preprocessQwen2VL(img, cfg);
  // first row: channel 0, frame 0, patch row 0 = pixels (0..13, 0) red channel
  assert.deepEqual(Array.from(out.pixelValues.subarray(0, 3)), [0, 3, 6]);
  // frame 1 repeats frame 0
  assert.deepEqual(out.pixelValues.subarray(196, 392), out.pixelValues.subarray(0, 196));
});

test('patch order: (block-row, block-col, row-in-block, col-in-block) rows of (c, t, y, x)', () => {
  // encode each pixel's coordinates into its bytes, then check where they land
  const W = 56, H = 56;
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set([x, y, 7], (y * W + x) * 3);
  const cfg = { ...parseQwen2VLProcessorConfig({}), doRescale: false, doNormalize: false };
  const out = preprocessQwen2VL({ width: W, height: H, data }, cfg);
  assert.deepEqual(out.gridThw, [1, 4, 4]);
  const row = 3 * 2 * 196;
  // patch rows: 0 -> (0,0), 1 -> (0,1), 2 -> (1,0), 3 -> (1,1), 4 -> (0,2) in patch units
  const expectTopLeft = [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 0]];
  expectTopLeft.forEach(([py, px], r) => {
    assert.equal(out.pixelValues[r * row], px! * 14, `row ${r} x`); // channel 0 = x
    assert.equal(out.pixelValues[r * row + 2 * 196], py! * 14, `row ${r} y`); // channel 1 = y
    assert.equal(out.pixelValues[r * row + 4 * 196], 7); // channel 2
  });
  // within a patch: (y, x) row-major
  assert.equal(out.pixelValues[row * 3 + 15], 14 + 1); // row 3 = patch (1,1): x = 14 + 15 % 14
  assert.equal(out.pixelValues[row * 3 + 2 * 196 + 15], 14 + 1); // y = 14 + floor(15 / 14)
});
