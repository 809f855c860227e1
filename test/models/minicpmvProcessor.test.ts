import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageError, ModelLoadError } from '../../src/errors.js';
import {
  MINICPMV_IMAGE_TAG, MiniCPMVImageInputs, MiniCPMVOptions, MiniCPMVProcessorConfig, ensureDivide, expandMiniCPMVPrompt,
  findBestResize, getSlicedGrid, loadMiniCPMVProcessorConfig, minicpmvGridPlaceholder, minicpmvImagePlaceholder,
  minicpmvPlaceholderGrid, minicpmvSlicing, parseMiniCPMVProcessorConfig, preprocessMiniCPMV, roundHalfEven,
} from '../../src/models/minicpmv/imageProcessing.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import { useSimdResampler } from '../../src/multimodal/pilResample.js';
import { caseImages, goldenCase, goldenChatCases } from '../helpers/golden.js';
import { fixturePath } from '../helpers/paths.js';
import { ExpectedOutput, assertExact, processorIndex, processorInput } from '../helpers/processorFixtures.js';

type Grid = [number, number] | null;
interface CaseOptions { maxSliceNums?: number; useImageId?: boolean; imageIndex?: number }
interface MiniCPMVCase extends ExpectedOutput {
  name: string; config: string; input: string; size: [number, number]; options: CaseOptions;
  grid: Grid; sourceSize: [number, number]; refineSize: [number, number] | null; tgtSizes: Array<[number, number]>;
  shapes: Array<[number, number, number]>; placeholder: string; referenceRaises: string | null;
}
interface MiniCPMVIndex {
  configs: Record<string, unknown>;
  cases: MiniCPMVCase[];
  expansions: Array<{ config: string; text: string; imageSizes: Array<[number, number]>; options: CaseOptions; grids: Grid[]; expanded: string }>;
  /** [W, H, scale_resolution, patch_size, max_slice_nums, grid, source [W, H], refine [W, H] or null] */
  geometry: Array<[number, number, number, number, number, Grid, [number, number], [number, number] | null]>;
}
const index = processorIndex<MiniCPMVIndex>('minicpmv');
const cfgOf = (name: string) => parseMiniCPMVProcessorConfig(index.configs[name], name);

function concat(r: MiniCPMVImageInputs): Float32Array {
  const out = new Float32Array(r.slices.reduce((n, s) => n + s.pixelValues.length, 0));
  let o = 0;
  for (const s of r.slices) {
    out.set(s.pixelValues, o);
    o += s.pixelValues.length;
  }
  return out;
}

for (const simd of [true, false]) {
  test(`MiniCPMVImageProcessor (${simd ? 'SIMD' : 'JS'} resampling): slices, tgt_sizes and pixel values bit-identical to the reference`, async () => {
    assert.equal(useSimdResampler(simd), simd);
    try {
      for (const c of index.cases) {
        const cfg = cfgOf(c.config);
        const img = await processorInput('minicpmv', c.input);
        assert.deepEqual([img.width, img.height], c.size);
        const r = preprocessMiniCPMV(img, cfg, { maxSliceNums: c.options.maxSliceNums });
        assert.deepEqual(r.grid, c.grid, `${c.name}: grid`);
        assert.deepEqual(r.sourceSize, c.sourceSize, `${c.name}: source size`);
        assert.deepEqual(r.refineSize, c.refineSize, `${c.name}: refine size`);
        assert.deepEqual(r.tgtSizes, c.tgtSizes, `${c.name}: tgt_sizes`);
        assert.deepEqual(r.slices.map((s) => [3, cfg.patchSize, s.pixelValues.length / (3 * cfg.patchSize)]), c.shapes, `${c.name}: shapes`);
        assertExact('minicpmv', concat(r), c, c.name);
      }
    } finally {
      useSimdResampler(true);
    }
  });
}

test('the image placeholder text equals get_slice_image_placeholder for every case', () => {
  for (const c of index.cases) {
    const cfg = cfgOf(c.config);
    const [w, h] = c.size;
    const grid = minicpmvPlaceholderGrid(w, h, cfg, c.options);
    const ph = minicpmvImagePlaceholder(grid, cfg, { imageIndex: c.options.imageIndex, useImageId: c.options.useImageId });
    assert.equal(ph, c.placeholder, c.name);
  }
});

test('the fixtures cover no slicing, 2..9 slices, grids with several rows, the slice cap, both id settings, slice_mode off and the released size', () => {
  const grids = index.cases.map((c) => c.grid);
  assert.ok(grids.some((g) => g === null));
  assert.ok(grids.some((g) => g && g[0] * g[1] === 9));
  assert.ok(grids.some((g) => g && g[1] >= 2 && g[0] >= 2));
  assert.ok(grids.some((g) => g && g[0] === 1 && g[1] >= 3));
  assert.ok(index.cases.some((c) => c.options.maxSliceNums !== undefined));
  assert.ok(index.cases.some((c) => c.options.useImageId === false));
  assert.ok(index.cases.some((c) => c.config === 'released_slice_mode_off'));
  assert.ok(index.cases.some((c) => c.config === 'released' && c.grid !== null));
  assert.ok(index.cases.some((c) => c.referenceRaises !== null));
  assert.ok(index.cases.some((c) => c.placeholder.includes('</slice>\n<slice>')));
});

test('slice geometry (find_best_resize, get_sliced_grid, get_refine_size) as the reference computes it, over many sizes and settings', () => {
  let sliced = 0;
  for (const [w, h, scale, patch, msn, grid, source, refine] of index.geometry) {
    const cfg = parseMiniCPMVProcessorConfig({ scale_resolution: scale, patch_size: patch, max_slice_nums: msn });
    const got = minicpmvSlicing(w, h, cfg);
    const label = `${w}x${h} scale ${scale} patch ${patch} max ${msn}`;
    assert.deepEqual(got.grid, grid, `${label}: grid`);
    assert.deepEqual(got.sourceSize, source, `${label}: source`);
    assert.deepEqual(got.refineSize, refine, `${label}: refine`);
    if (grid) sliced++;
  }
  assert.ok(sliced > 1000 && index.geometry.length - sliced > 500);
});

test('prompt expansion: each (<image>./</image>) becomes the image placeholder, with image ids counted over the prompt', () => {
  for (const e of index.expansions) {
    const cfg = cfgOf(e.config);
    assert.equal(expandMiniCPMVPrompt(e.text, e.imageSizes, cfg, e.options), e.expanded, e.text);
    e.imageSizes.forEach(([w, h], i) => assert.deepEqual(minicpmvSlicing(w, h, cfg, e.options).grid, e.grids[i]));
  }
  const cfg = cfgOf('public');
  assert.throws(() => expandMiniCPMVPrompt(`${MINICPMV_IMAGE_TAG} and ${MINICPMV_IMAGE_TAG}`, [[40, 30]], cfg), ImageError);
  assert.equal(expandMiniCPMVPrompt('no image here', [], cfg), 'no image here');
});

test('placeholder layout: slice rows joined by a newline, none after the last; no grid text when slice_mode is off', () => {
  const cfg = { ...cfgOf('public'), imageFeatureSize: 2 };
  assert.equal(minicpmvGridPlaceholder([2, 3], cfg),
    '<slice><unk><unk></slice><slice><unk><unk></slice>\n<slice><unk><unk></slice><slice><unk><unk></slice>\n<slice><unk><unk></slice><slice><unk><unk></slice>');
  assert.equal(minicpmvGridPlaceholder(null, cfg), '');
  assert.equal(minicpmvImagePlaceholder([1, 2], cfg, { imageIndex: 12 }),
    '<image_id>12</image_id><image><unk><unk></image><slice><unk><unk></slice>\n<slice><unk><unk></slice>');
  assert.equal(minicpmvImagePlaceholder([1, 2], { ...cfg, sliceMode: false }, { imageIndex: 1 }), '<image_id>1</image_id><image><unk><unk></image>');
  assert.equal(minicpmvImagePlaceholder([1, 2], cfg, { useImageId: false }), '<image><unk><unk></image><slice><unk><unk></slice>\n<slice><unk><unk></slice>');
});

test('rounding: Python round (half to even) and int() truncation', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, -0.5, -1.5, 2.4999999999999996].map(roundHalfEven), [0, 2, 2, 4, 4, 6, 0, -2, 2]);
  assert.equal(ensureDivide(63, 14), 56); // 4.5 -> 4
  assert.equal(ensureDivide(77, 14), 84); // 5.5 -> 6
  assert.equal(ensureDivide(6, 14), 14); // never below one patch
  assert.deepEqual(findBestResize(60, 50, 70, 14, true), [70, 56]);
  assert.deepEqual(findBestResize(400, 30, 56, 14, false), [196, 14]);
  assert.deepEqual(findBestResize(30, 400, 56, 14, false), [14, 210]);
  assert.equal(getSlicedGrid(56, 56, 9, 56), null);
  assert.equal(getSlicedGrid(57, 55, 9, 56), null); // 3135 px: not above 56^2
  assert.deepEqual(getSlicedGrid(57, 56, 9, 56), [2, 1]);
  assert.deepEqual(getSlicedGrid(60, 60, 9, 56), [1, 2]); // [1, 2] and [2, 1] tie: the first one wins
});

test('the golden chat cases: tgt_sizes, per-slice pixel values and the expanded prompt as the model reference saw them', async () => {
  const sets: Array<[string, string]> = [['minicpmv', 'golden'], ['minicpmv', 'golden-extra'], ['minicpmv_bf16', 'golden-extra']];
  let checked = 0;
  for (const [family, set] of sets) {
    const cc = goldenChatCases(family, set);
    const cfg = loadMiniCPMVProcessorConfig(join(fixturePath(`${set}/${family}`), cc.model_dir));
    for (const c of cc.cases) {
      const g = goldenCase(family, c.dir.split('/').pop(), set);
      const pk = (c.request_params.processor_kwargs ?? {}) as { max_slice_nums?: number; use_image_id?: boolean };
      const opts: MiniCPMVOptions = { maxSliceNums: pk.max_slice_nums, useImageId: pk.use_image_id };
      const images = await Promise.all(caseImages(g.dir).map(async (f) => decodeImage(readFileSync(f))));
      const tgt: Array<[number, number]> = [];
      const pixels: Float32Array[] = [];
      for (const img of images) {
        const r = preprocessMiniCPMV(img, cfg, opts);
        tgt.push(...r.tgtSizes);
        pixels.push(...r.slices.map((s) => s.pixelValues));
      }
      assert.deepEqual(tgt, g.oracle.tgt_sizes_hw, `${set}/${family}/${c.name}: tgt_sizes`);
      if (g.has('pixel_values_concat')) { // the public case stores the slices side by side: [3, patch, sum(L) * patch]
        const want = g.tensor('pixel_values_concat');
        const p = cfg.patchSize;
        const total = want.length / (3 * p);
        let off = 0;
        for (const pv of pixels) {
          const w = pv.length / (3 * p);
          for (let row = 0; row < 3 * p; row++) {
            for (let i = 0; i < w; i++) {
              assert.ok(Object.is(pv[row * w + i], want[row * total + off + i]), `${c.name}: pixel (${row}, ${off + i})`);
            }
          }
          off += w;
        }
        assert.equal(off, total);
      } else {
        pixels.forEach((pv, k) => {
          const want = g.has(`pixel_values_${k}`) ? g.tensor(`pixel_values_${k}`) : null;
          assert.ok(want, `${c.name}: pixel_values_${k}`);
          assert.equal(pv.length, want.length);
          for (let i = 0; i < pv.length; i++) if (!Object.is(pv[i], want[i])) assert.fail(`${c.name}: slice ${k} value ${i}: ${pv[i]} vs ${want[i]}`);
        });
        assert.equal(pixels.length, g.oracle.num_slices);
      }
      const sizes = images.map((im) => [im.width, im.height] as [number, number]);
      assert.equal(expandMiniCPMVPrompt(c.rendered_prompt, sizes, cfg, opts), g.oracle.expanded_prompt, `${c.name}: expanded prompt`);
      checked++;
    }
  }
  assert.ok(checked >= 17);
});

test('preprocessor_config.json: the released keys, the image processor defaults, and clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-minicpmv-'));
  try {
    const pub = loadMiniCPMVProcessorConfig(fixturePath('golden/minicpmv/model'));
    assert.equal(pub.scaleResolution, 56);
    assert.equal(pub.imageFeatureSize, 16);
    assert.equal(pub.useImageId, true);
    assert.equal(pub.sliceMode, true);
    assert.equal(pub.maxSliceNums, 9);
    assert.equal(pub.tokens.imIdStart, '<image_id>');
    const d: MiniCPMVProcessorConfig = parseMiniCPMVProcessorConfig({});
    assert.deepEqual([d.maxSliceNums, d.scaleResolution, d.patchSize, d.imageFeatureSize, d.useImageId, d.sliceMode, d.version],
      [9, 448, 14, 64, false, true, 2.0]);
    assert.deepEqual(d.normMean, [0.5, 0.5, 0.5]);
    assert.throws(() => parseMiniCPMVProcessorConfig({ max_slice_nums: 0 }), ModelLoadError);
    assert.throws(() => parseMiniCPMVProcessorConfig({ norm_std: [0.5, 0, 0.5] }), ModelLoadError);
    assert.throws(() => parseMiniCPMVProcessorConfig({ unk: '' }), ModelLoadError);
    assert.throws(() => parseMiniCPMVProcessorConfig([]), ModelLoadError);
    writeFileSync(join(dir, 'preprocessor_config.json'), '{ nope');
    assert.throws(() => loadMiniCPMVProcessorConfig(dir), ModelLoadError);
    assert.throws(() => preprocessMiniCPMV({ width: 3, height: 3, data: new Uint8Array(27) }, pub, { maxSliceNums: 0 }), RangeError);
    assert.throws(() => preprocessMiniCPMV({ width: 10, height: 10, data: new Uint8Array(300) }, { ...pub, sliceMode: false }), ImageError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
