import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageError, ModelLoadError } from '../../src/errors.js';
import {
  GEMMA3_PAN_AND_SCAN_DEFAULTS, loadGemma3ImageSeqLength, loadGemma3ProcessorConfig, panAndScanCrops,
  parseGemma3ProcessorConfig, preprocessGemma3,
} from '../../src/models/gemma3/imageProcessing.js';
import { useSimdResampler } from '../../src/multimodal/pilResample.js';
import { ExpectedOutput, assertExact, processorIndex, processorInput } from '../helpers/processorFixtures.js';

interface Gemma3Case extends ExpectedOutput {
  name: string; config: string; input: string; size: [number, number]; shape: [number, number, number, number]; numCrops: number;
}
interface Gemma3Index {
  configs: Record<string, unknown>;
  cases: Gemma3Case[];
  /** [height, width, min crop size, max crops, min ratio, crop shapes [h, w]] */
  panAndScan: Array<[number, number, number, number, number, Array<[number, number]>]>;
}
const index = processorIndex<Gemma3Index>('gemma3');

for (const simd of [true, false]) {
  test(`Gemma3ImageProcessor (${simd ? 'SIMD' : 'JS'} resampling): pixel values bit-identical to the reference`, async () => {
    assert.equal(useSimdResampler(simd), simd);
    try {
      for (const c of index.cases) {
        const cfg = parseGemma3ProcessorConfig(index.configs[c.config], c.config);
        const img = await processorInput('gemma3', c.input);
        assert.deepEqual([img.width, img.height], c.size);
        const r = preprocessGemma3(img, cfg);
        assert.equal(r.numCrops, c.numCrops, `${c.name}: crops`);
        assert.deepEqual([r.pieces, 3, r.height, r.width], c.shape, `${c.name}: shape`);
        assert.equal(r.pixelValues.length, c.shape.reduce((a, b) => a * b));
        assertExact('gemma3', r.pixelValues, c, c.name);
      }
    } finally {
      useSimdResampler(true);
    }
  });
}

test('the fixtures cover the released size, pan-and-scan with 0, 2, 3 and 4 crops, and both filters', () => {
  const crops = new Set(index.cases.map((c) => c.numCrops));
  for (const n of [0, 2, 3, 4]) assert.ok(crops.has(n), `${n} crops`);
  assert.ok(index.cases.some((c) => c.shape[2] === 896 && c.shape[3] === 896));
  assert.ok(index.cases.some((c) => (index.configs[c.config] as { resample: number }).resample === 3));
});

test('pan-and-scan crops as the reference cuts them, over many sizes and settings', () => {
  let cropped = 0;
  for (const [h, w, minCropSize, maxNumCrops, minRatioToActivate, shapes] of index.panAndScan) {
    const crops = panAndScanCrops(h, w, { minCropSize, maxNumCrops, minRatioToActivate });
    assert.deepEqual(crops.map((c) => [c.height, c.width]), shapes, `${w}x${h} with ${minCropSize}/${maxNumCrops}/${minRatioToActivate}`);
    if (crops.length) cropped++;
    // side by side (or stacked), covering the image
    for (const c of crops) assert.ok(c.y + c.height <= h && c.x + c.width <= w);
  }
  assert.ok(cropped > 500, `${cropped} of ${index.panAndScan.length} sizes cropped`);
});

test('per-request pan-and-scan settings replace the config (as the processor call kwargs do)', async () => {
  const c = index.cases.find((x) => x.name === 'small_pas_noise_161x37')!;
  const img = await processorInput('gemma3', c.input);
  const cfg = parseGemma3ProcessorConfig(index.configs.small_pas, 'small_pas');
  assert.equal(preprocessGemma3(img, cfg, { doPanAndScan: false }).pieces, 1);
  assert.equal(preprocessGemma3(img, cfg, { panAndScan: { maxNumCrops: 2 } }).numCrops, 2);
  const off = parseGemma3ProcessorConfig({ ...(index.configs.small_pas as object), do_pan_and_scan: null }, 'x');
  const on = preprocessGemma3(img, off, { doPanAndScan: true });
  assert.equal(on.numCrops, 4);
  assertExact('gemma3', on.pixelValues, c, 'pan-and-scan turned on per request');
  // the first piece is the whole image whether or not crops follow
  const plain = preprocessGemma3(img, off);
  assert.deepEqual(on.pixelValues.subarray(0, plain.pixelValues.length), plain.pixelValues);
});

test('Gemma 3 config parsing: the released defaults, and clear errors', () => {
  const cfg = parseGemma3ProcessorConfig(index.configs.released, 'released');
  assert.equal(cfg.resample, 'bilinear');
  assert.deepEqual(cfg.size, { height: 896, width: 896 });
  assert.equal(cfg.doPanAndScan, false);
  assert.deepEqual(cfg.panAndScan, GEMMA3_PAN_AND_SCAN_DEFAULTS);
  assert.deepEqual([cfg.imageMean, cfg.imageStd], [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]);
  const d = parseGemma3ProcessorConfig({});
  assert.deepEqual([d.size, d.resample, d.imageMean], [{ height: 224, width: 224 }, 'bilinear', [0.5, 0.5, 0.5]]);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ resample: 1 }, /resample must be 2 \(bilinear\) or 3 \(bicubic\)/],
    [{ size: { shortest_edge: 896 } }, /size must be an object with height and width/],
    [{ size: { height: 0, width: 4 } }, /size.height must be a positive integer/],
    [{ do_resize: false }, /do_resize: false is not supported/],
    [{ pan_and_scan_min_ratio_to_activate: -1 }, /pan_and_scan_min_ratio_to_activate must be a positive number/],
    [{ pan_and_scan_max_num_crops: 2.5 }, /pan_and_scan_max_num_crops must be a positive integer/],
    [{ image_std: [0.5, 0, 0.5] }, /image_std must not contain 0/],
  ];
  for (const [json, msg] of bad) assert.throws(() => parseGemma3ProcessorConfig(json, 'cfg.json'), (e: Error) => e instanceof ModelLoadError && msg.test(e.message) && e.message.startsWith('cfg.json'));
  assert.throws(() => parseGemma3ProcessorConfig([], 'cfg.json'), ModelLoadError);
});

test('Gemma 3 loading from a model folder: preprocessor config and soft tokens per image', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-gemma3-'));
  try {
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(index.configs.public));
    assert.deepEqual(loadGemma3ProcessorConfig(dir).size, { height: 56, width: 56 });
    assert.equal(loadGemma3ImageSeqLength(dir), 256);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ mm_tokens_per_image: 16 }));
    assert.equal(loadGemma3ImageSeqLength(dir), 16);
    writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_seq_length: 16, processor_class: 'Gemma3Processor' }));
    assert.equal(loadGemma3ImageSeqLength(dir), 16);
    writeFileSync(join(dir, 'processor_config.json'), JSON.stringify({ image_seq_length: 64 }));
    assert.throws(() => loadGemma3ImageSeqLength(dir), /image_seq_length 64 differs from mm_tokens_per_image 16/);
    writeFileSync(join(dir, 'processor_config.json'), '{');
    assert.throws(() => loadGemma3ImageSeqLength(dir), /is not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('preprocessGemma3 rejects inconsistent images and crops that would be empty', () => {
  const cfg = parseGemma3ProcessorConfig({ size: { height: 8, width: 8 }, do_pan_and_scan: true, pan_and_scan_min_crop_size: 1 });
  assert.throws(() => preprocessGemma3({ width: 2, height: 2, data: new Uint8Array(5) }, cfg), RangeError);
  // 9x2: 4 crops of ceil(9/4) = 3 columns, the 4th starting at the edge: numpy gives an empty slice, PIL then fails
  assert.deepEqual(panAndScanCrops(2, 9, { minCropSize: 1, maxNumCrops: 4, minRatioToActivate: 1.2 }).map((c) => c.width), [3, 3, 3, 0]);
  assert.throws(() => preprocessGemma3({ width: 9, height: 2, data: new Uint8Array(54) }, cfg), ImageError);
  const ok = preprocessGemma3({ width: 4, height: 2, data: new Uint8Array(24).fill(255) }, cfg);
  assert.equal(ok.numCrops, 2);
  assert.ok(ok.pixelValues.every((v) => v === 1));
});
