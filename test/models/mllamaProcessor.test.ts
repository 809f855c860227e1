import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ModelLoadError } from '../../src/errors.js';
import {
  aspectRatioId, aspectRatioMask, fitToCanvas, loadMllamaProcessorConfig, optimalTiledCanvas, parseMllamaProcessorConfig,
  preprocessMllama, supportedAspectRatios,
} from '../../src/models/mllama/imageProcessing.js';
import { useSimdResampler } from '../../src/multimodal/pilResample.js';
import { ExpectedOutput, assertExact, processorIndex, processorInput, sha256 } from '../helpers/processorFixtures.js';

interface MllamaCase extends ExpectedOutput {
  name: string; config: string; input: string; size: [number, number]; shape: [number, number, number, number];
  numTiles: number; aspectRatioId: number; aspectRatioMask: number[]; sha256Padded: string;
}
interface MllamaIndex {
  configs: Record<string, unknown>;
  cases: MllamaCase[];
  /** [height, width, max tiles, tile, canvas [h, w], fitted [h, w], aspect ratio id] */
  canvas: Array<[number, number, number, number, [number, number], [number, number], number]>;
  supportedAspectRatios: Record<string, Array<[number, number]>>;
}
const index = processorIndex<MllamaIndex>('mllama');

for (const simd of [true, false]) {
  test(`MllamaImageProcessor (${simd ? 'SIMD' : 'JS'} resampling): pixel values, tiles and aspect ratios bit-identical to the reference`, async () => {
    assert.equal(useSimdResampler(simd), simd);
    try {
      for (const c of index.cases) {
        const cfg = parseMllamaProcessorConfig(index.configs[c.config], c.config);
        const img = await processorInput('mllama', c.input);
        assert.deepEqual([img.width, img.height], c.size);
        const r = preprocessMllama(img, cfg);
        assert.equal(r.numTiles, c.numTiles, `${c.name}: tiles`);
        assert.equal(r.aspectRatioId, c.aspectRatioId, `${c.name}: aspect ratio id`);
        assert.deepEqual(r.aspectRatioMask, c.aspectRatioMask, `${c.name}: aspect ratio mask`);
        const per = c.shape.slice(1).reduce((a, b) => a * b);
        assert.equal(r.pixelValues.length, c.shape[0] * per, `${c.name}: padded to max_image_tiles`);
        assert.equal(sha256(r.pixelValues), c.sha256Padded, `${c.name}: the padded array`);
        assertExact('mllama', r.pixelValues.subarray(0, r.numTiles * per), c, c.name);
        const real = preprocessMllama(img, cfg, { padTiles: false });
        assert.equal(real.pixelValues.length, r.numTiles * per);
        assert.deepEqual(real.pixelValues, r.pixelValues.subarray(0, r.numTiles * per));
      }
    } finally {
      useSimdResampler(true);
    }
  });
}

test('supported aspect ratios in the reference order', () => {
  for (const [n, ratios] of Object.entries(index.supportedAspectRatios)) assert.deepEqual(supportedAspectRatios(Number(n)), ratios, `max ${n} tiles`);
});

test('canvas choice, size fitted to the canvas and aspect ratio id over many sizes', () => {
  for (const [h, w, maxTiles, tile, canvas, fitted, id] of index.canvas) {
    const label = `${w}x${h}, ${maxTiles} tiles of ${tile}`;
    const c = optimalTiledCanvas(h, w, maxTiles, tile);
    assert.deepEqual(c, canvas, `${label}: canvas`);
    assert.deepEqual(fitToCanvas(h, w, c[0], c[1], tile), fitted, `${label}: fitted size`);
    assert.equal(aspectRatioId(c[0] / tile, c[1] / tile, maxTiles), id, `${label}: id`);
  }
  assert.ok(index.canvas.length > 1000);
});

test('the aspect ratio mask marks the real tiles, and always the first', () => {
  assert.deepEqual(aspectRatioMask(1, 4), [1, 0, 0, 0]);
  assert.deepEqual(aspectRatioMask(3, 4), [1, 1, 1, 0]);
  assert.deepEqual(aspectRatioMask(4, 4), [1, 1, 1, 1]);
  assert.throws(() => aspectRatioId(3, 2, 4), RangeError);
});

test('padding is the normalised 0 byte inside real tiles and exactly 0.0 in unused slots', () => {
  const cfg = parseMllamaProcessorConfig({ size: { height: 4, width: 4 }, max_image_tiles: 4, image_mean: 0.5, image_std: 0.5 });
  // 8x2 white: canvas 1 tile high, 2 wide; the height stays 2 (the width's scale, 1, is the smaller)
  const r = preprocessMllama({ width: 8, height: 2, data: new Uint8Array(48).fill(255) }, cfg);
  assert.deepEqual([r.tiles, r.numTiles, r.resized, r.aspectRatioId], [[1, 2], 2, [2, 8], 2]);
  assert.deepEqual(Array.from(r.pixelValues.subarray(0, 16)), [1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1]);
  assert.ok(r.pixelValues.subarray(2 * 48).every((v) => Object.is(v, 0)));
  // 9x2: 3 tiles wide; the third holds one column of the image
  const r2 = preprocessMllama({ width: 9, height: 2, data: new Uint8Array(54).fill(255) }, cfg);
  assert.deepEqual([r2.tiles, r2.resized], [[1, 3], [2, 9]]);
  assert.deepEqual(Array.from(r2.pixelValues.subarray(2 * 48, 2 * 48 + 16)), [1, -1, -1, -1, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]);
  assert.ok(r2.pixelValues.subarray(3 * 48).every((v) => Object.is(v, 0)));
});

test('Mllama config parsing: the released keys, defaults, and clear errors', () => {
  const cfg = parseMllamaProcessorConfig(index.configs.released, 'released');
  assert.deepEqual([cfg.tileSize, cfg.maxImageTiles, cfg.resample], [560, 4, 'bilinear']);
  const d = parseMllamaProcessorConfig({});
  assert.deepEqual([d.tileSize, d.maxImageTiles, d.resample, d.imageMean], [224, 4, 'bilinear', [0.5, 0.5, 0.5]]);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ size: { height: 560, width: 280 } }, /size must be square/],
    [{ size: { shortest_edge: 560 } }, /size must be an object with height and width/],
    [{ do_pad: false }, /do_pad: false is not supported/],
    [{ do_resize: false }, /do_resize: false is not supported/],
    [{ max_image_tiles: 0 }, /max_image_tiles must be a positive integer/],
    [{ resample: 0 }, /resample must be 2 \(bilinear\) or 3 \(bicubic\)/],
  ];
  for (const [json, msg] of bad) assert.throws(() => parseMllamaProcessorConfig(json, 'cfg.json'), (e: Error) => e instanceof ModelLoadError && msg.test(e.message) && e.message.startsWith('cfg.json'));
  const dir = mkdtempSync(join(tmpdir(), 'iris-mllama-'));
  try {
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(index.configs.tile32_max1));
    assert.deepEqual([loadMllamaProcessorConfig(dir).tileSize, loadMllamaProcessorConfig(dir).maxImageTiles], [32, 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
