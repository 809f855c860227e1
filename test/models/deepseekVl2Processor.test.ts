import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ImageError, ModelLoadError } from '../../src/errors.js';
import {
  DSVL2_NEWLINE, DSVL2_SEPARATOR, DeepseekVL2ProcessorConfig, containSize, deepseekVL2ChannelLuts, deepseekVL2ImageTokenCount,
  deepseekVL2TokenLayout, deepseekVL2TokensPerSide, loadDeepseekVL2ProcessorConfig, padColour, parseDeepseekVL2ProcessorConfig,
  preprocessDeepseekVL2, roundHalfEven, selectBestResolution,
} from '../../src/models/deepseek_vl2/imageProcessing.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import { useSimdResampler } from '../../src/multimodal/pilResample.js';
import { ExpectedOutput, assertExact, processorIndex, processorInput } from '../helpers/processorFixtures.js';
import { fixturePath } from '../helpers/paths.js';

interface DsCase extends Partial<ExpectedOutput> {
  name: string; config: string; input: string; size: [number, number]; cropping: boolean; error?: string;
  best_resolution?: [number, number]; grid?: [number, number]; num_image_tokens?: number;
  shape?: [number, number, number, number]; pad_colour?: [number, number, number];
}
interface DsIndex {
  configs: Record<string, unknown>;
  cases: DsCase[];
  best: Array<[string, number, number, [number, number] | null]>;
  contain: Array<[number, number, number, number, [number, number] | null]>;
  layouts: Array<{ model: string; global_view_pos: 'head' | 'tail'; grid: [number, number]; tokens_per_side: number; num_tokens: number; source: number[] }>;
}
const FAMILY = 'deepseek_vl2';
const index = processorIndex<DsIndex>(FAMILY);
const cfgOf = (name: string): DeepseekVL2ProcessorConfig => parseDeepseekVL2ProcessorConfig(index.configs[name], {}, name);

for (const simd of [true, false]) {
  test(`DeepSeek-VL2 preprocessing (${simd ? 'SIMD' : 'JS'} resampling): pixel values bit-identical to the reference`, async () => {
    assert.equal(useSimdResampler(simd), simd);
    try {
      for (const c of index.cases) {
        const cfg = cfgOf(c.config);
        const img = await processorInput(FAMILY, c.input);
        assert.deepEqual([img.width, img.height], c.size);
        if (c.error) {
          assert.throws(() => preprocessDeepseekVL2(img, cfg, { cropping: c.cropping }), ImageError, c.name);
          continue;
        }
        const r = preprocessDeepseekVL2(img, cfg, { cropping: c.cropping });
        assert.deepEqual(r.bestResolution, c.best_resolution, `${c.name}: best resolution`);
        assert.deepEqual([r.grid.widthTiles, r.grid.heightTiles], c.grid, `${c.name}: grid`);
        assert.deepEqual([r.numTiles, 3, r.imageSize, r.imageSize], c.shape, `${c.name}: shape`);
        assert.equal(deepseekVL2ImageTokenCount(r.grid, cfg), c.num_image_tokens, `${c.name}: image tokens`);
        assert.deepEqual(padColour(cfg), c.pad_colour, `${c.name}: pad colour`);
        assertExact(FAMILY, r.pixelValues, c as DsCase & ExpectedOutput, c.name);
      }
    } finally {
      useSimdResampler(true);
    }
  });
}

test('the processor fixtures cover tiny, odd, thin and many-tile images, the released tile size and failing inputs', () => {
  const ok = index.cases.filter((c) => !c.error);
  assert.ok(ok.some((c) => c.size[0] * c.size[1] <= 6));
  assert.ok(ok.some((c) => c.grid![0] * c.grid![1] >= 9));
  assert.ok(ok.some((c) => c.shape![2] === 384));
  assert.ok(ok.some((c) => !c.cropping));
  assert.ok(ok.some((c) => c.size[0] / c.size[1] >= 50 || c.size[1] / c.size[0] >= 50));
  assert.ok(index.cases.some((c) => c.error));
});

test('select_best_resolution over many sizes and three candidate lists', () => {
  for (const [config, w, h, want] of index.best) {
    const got = selectBestResolution(w, h, cfgOf(config).candidateResolutions);
    assert.deepEqual(got, want, `${config} ${w}x${h}`);
  }
  // an image too thin for every candidate (effective resolution 0 everywhere) takes the first candidate with
  // the least waste among those zeros: the tie branch fires on 0 == 0
  assert.deepEqual(selectBestResolution(1, 1000, cfgOf('public').candidateResolutions), [100, 100]);
});

test('ImageOps.contain target sizes (round half to even, kept box side when it rounds back)', () => {
  for (const [w, h, bw, bh, want] of index.contain) {
    const got = containSize(w, h, bw, bh);
    if (want) assert.deepEqual(got, want, `${w}x${h} in ${bw}x${bh}`);
    else assert.ok(got[0] < 1 || got[1] < 1, `${w}x${h} in ${bw}x${bh}: PIL fails, so a side must be 0`);
  }
  assert.equal(roundHalfEven(12.5), 12);
  assert.equal(roundHalfEven(13.5), 14);
  assert.equal(roundHalfEven(0.49999999999999994), 0);
});

test('image-token layout equals the order prepare_inputs_embeds puts the features in', () => {
  for (const l of index.layouts) {
    const base = cfgOf(l.model);
    const cfg = { ...base, globalViewPos: l.global_view_pos };
    const grid = { widthTiles: l.grid[0], heightTiles: l.grid[1] };
    assert.equal(deepseekVL2TokensPerSide(cfg), l.tokens_per_side);
    const lay = deepseekVL2TokenLayout(grid, cfg);
    assert.equal(lay.numTokens, l.num_tokens);
    assert.equal(deepseekVL2ImageTokenCount(grid, cfg), l.num_tokens);
    assert.deepEqual(Array.from(lay.source), l.source, `${l.model} ${l.global_view_pos} ${l.grid}`);
    assert.equal(lay.source[lay.separatorPosition], DSVL2_SEPARATOR);
    const nl = l.source.flatMap((v, i) => (v === DSVL2_NEWLINE ? [i] : []));
    assert.deepEqual(lay.newlinePositions, nl);
    assert.equal(nl.length, l.tokens_per_side * (1 + grid.heightTiles));
    assert.equal(lay.globalRange[1] - lay.globalRange[0], l.tokens_per_side * (l.tokens_per_side + 1));
  }
});

/** The float32 tensors of an uncompressed safetensors buffer. */
function safetensorsF32(buf: Buffer): Map<string, { shape: number[]; data: Float32Array }> {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__' || v.dtype !== 'F32') continue;
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(k, { shape: v.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) });
  }
  return out;
}

test('the chat cases: every image preprocessed bit-identically, grids, token counts and <image> runs as in the prompt ids', async () => {
  const sets: Array<[string, string]> = [['golden', 'deepseek_vl2'], ['golden-extra', 'deepseek_vl2'], ['golden-extra', 'deepseek_vl2_small'], ['golden-extra', 'deepseek_vl2_bf16']];
  let images = 0;
  for (const [set, fam] of sets) {
    const cc = JSON.parse(readFileSync(fixturePath(`${set}/${fam}/chat_cases.json`), 'utf8'));
    const modelDir = join(fixturePath(`${set}/${fam}`), cc.model_dir);
    const cfg = loadDeepseekVL2ProcessorConfig(modelDir);
    const imageId = cc.special_tokens['<image>'] as number;
    for (const c of cc.cases) {
      const dir = fixturePath(`${set}/${fam}/${c.dir}`);
      const gz = join(dir, 'processor.safetensors.gz');
      const tensors = existsSync(gz) ? safetensorsF32(gunzipSync(readFileSync(gz))) : safetensorsF32(readFileSync(join(dir, 'tensors.safetensors')));
      const ids: number[] = c.expected.prompt_token_ids ?? JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8')).prompt_ids;
      const runs: number[] = [];
      ids.forEach((t, i) => {
        if (t !== imageId) return;
        if (i > 0 && ids[i - 1] === imageId) runs[runs.length - 1]!++;
        else runs.push(1);
      });
      assert.deepEqual(runs, c.num_image_tokens, `${set}/${fam}/${c.name}: <image> runs`);
      const files: string[] = c.image_files;
      const pv = tensors.get('pixel_values');
      let offset = 0;
      for (let k = 0; k < files.length; k++) {
        const img = await decodeImage(readFileSync(join(fixturePath(`${set}/${fam}`), files[k]!)));
        const r = preprocessDeepseekVL2(img, cfg, { cropping: files.length <= 2 });
        assert.deepEqual([r.grid.widthTiles, r.grid.heightTiles], c.images_spatial_crop_wh_tiles[k], `${c.name} image ${k}: grid`);
        assert.equal(deepseekVL2ImageTokenCount(r.grid, cfg), c.num_image_tokens[k]);
        const want = pv!.data.subarray(offset, offset + r.pixelValues.length);
        assert.equal(want.length, r.pixelValues.length);
        let diff = 0;
        for (let i = 0; i < want.length; i++) if (!Object.is(want[i], r.pixelValues[i])) diff++;
        assert.equal(diff, 0, `${set}/${fam}/${c.name} image ${k}: ${diff} pixel values differ`);
        offset += r.pixelValues.length;
        images++;
      }
      if (pv) assert.equal(offset, pv.data.length, `${c.name}: all tiles accounted for`);
    }
  }
  assert.ok(images >= 15, `${images} images`);
});

test('ToTensor + Normalize lookup: v / 255 in float32, then (x - mean) / std', () => {
  const lut = deepseekVL2ChannelLuts({ imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5], normalize: true });
  assert.equal(lut[0], -1);
  assert.equal(lut[255], 1);
  assert.equal(lut[127], Math.fround(Math.fround(Math.fround(127 / 255) - 0.5) / 0.5));
  const plain = deepseekVL2ChannelLuts({ imageMean: [0.5, 0.5, 0.5], imageStd: [0.5, 0.5, 0.5], normalize: false });
  assert.equal(plain[51], Math.fround(51 / 255));
});

test('DeepSeek-VL2 config parsing: the released files, defaults and clear errors', () => {
  const pub = loadDeepseekVL2ProcessorConfig(fixturePath('golden/deepseek_vl2/model'));
  assert.equal(pub.imageSize, 100);
  assert.equal(pub.candidateResolutions.length, 23);
  assert.deepEqual(pub.candidateResolutions[1], [100, 200]);
  assert.equal(pub.globalViewPos, 'head');
  assert.equal(pub.tileTag, '2D');
  assert.deepEqual(padColour(pub), [127, 127, 127]);
  assert.equal(deepseekVL2TokensPerSide(pub), 4);
  const small = loadDeepseekVL2ProcessorConfig(fixturePath('golden-extra/deepseek_vl2_small/model'));
  assert.equal(small.imageSize, 70);
  assert.equal(deepseekVL2TokensPerSide(small), 3);
  const released = cfgOf('released');
  assert.equal(deepseekVL2TokensPerSide(released), 14); // 384 // 14 = 27 patches, padded to 28, 2x2 -> 14
  assert.equal(deepseekVL2ImageTokenCount({ widthTiles: 1, heightTiles: 1 }, released), 14 * 15 + 1 + 14 * 15);
  const base = index.configs.public as Record<string, unknown>;
  assert.throws(() => parseDeepseekVL2ProcessorConfig({ ...base, candidate_resolutions: [[100, 100], [150, 100]] }), ModelLoadError);
  assert.throws(() => parseDeepseekVL2ProcessorConfig({ ...base, patch_size: undefined }), /patch_size/);
  assert.throws(() => parseDeepseekVL2ProcessorConfig({ ...base, candidate_resolutions: [] }), ModelLoadError);
  assert.throws(() => parseDeepseekVL2ProcessorConfig(base, { tile_tag: '1D' }), /tile_tag/);
  assert.throws(() => parseDeepseekVL2ProcessorConfig(base, { global_view_pos: 'middle' }), /global_view_pos/);
  assert.throws(() => parseDeepseekVL2ProcessorConfig({ ...base, image_std: [0.5, 0, 0.5] }), /image_std/);
  assert.equal(parseDeepseekVL2ProcessorConfig(base, { global_view_pos: 'tail' }).globalViewPos, 'tail');
  assert.throws(() => preprocessDeepseekVL2({ width: 0, height: 0, data: new Uint8Array(0) }, pub), ImageError);
});
