import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeImage } from '../../src/multimodal/decode.js';
import { pilFilterOf, resizeBicubic, resizeBilinear, resizePil, useSimdResampler } from '../../src/multimodal/pilResample.js';
import { ExpectedOutput, assertExact, processorIndex, processorInput } from '../helpers/processorFixtures.js';
import { byteDiff, pilIndex, readPil } from './fixtures.js';

// Expected bytes are Pillow's Image.resize(..., BICUBIC) output (see index.json "pillow"),
// for both implementations of the passes (WebAssembly SIMD and the JS loops).
for (const simd of [true, false]) {
  for (const c of pilIndex.resize) {
    test(`resizeBicubic (${simd ? 'SIMD' : 'JS'}) is bit-identical to Pillow: ${c.name}`, async () => {
      assert.equal(useSimdResampler(simd), simd, 'WebAssembly SIMD is available in Node 20');
      try {
        const img = await decodeImage(readPil(c.input));
        assert.deepEqual([img.width, img.height], c.inSize);
        const [w, h] = c.outSize;
        const out = resizeBicubic(img, w, h);
        assert.deepEqual([out.width, out.height], [w, h]);
        const expected = readPil(c.expected);
        assert.equal(out.data.length, expected.length);
        const d = byteDiff(out.data, expected);
        assert.equal(d.count, 0, `${d.count} bytes differ (max ${d.max})`);
      } finally {
        useSimdResampler(true);
      }
    });
  }
}

test('resizeBicubic: the SIMD and JS passes give the same bytes (sizes, boxes, buffer offsets)', () => {
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
  const cases: Array<[number, number, number, number, [number, number, number, number]?]> = [
    [1, 1, 5, 3], [5, 3, 1, 1], [17, 9, 16, 9], [17, 9, 17, 8], [640, 480, 28, 28], [333, 101, 1001, 47],
    [1280, 960, 1288, 952], [97, 311, 40, 900], [64, 64, 64, 64, [3.5, 2.25, 60.75, 50]], [50, 40, 30, 20, [10, 0, 50, 40]],
  ];
  for (let r = 0; r < 12; r++) {
    cases.push([1 + Math.floor(rnd() * 300), 1 + Math.floor(rnd() * 300), 1 + Math.floor(rnd() * 300), 1 + Math.floor(rnd() * 300)]);
  }
  for (const [w, h, ow, oh, box] of cases) {
    // extreme values (0/255 edges) make the clamping matter
    const data = Uint8Array.from({ length: w * h * 3 }, () => (rnd() < 0.3 ? (rnd() < 0.5 ? 0 : 255) : Math.floor(rnd() * 256)));
    const img = { width: w, height: h, data };
    assert.equal(useSimdResampler(true), true);
    const backing = new Uint8Array(ow * oh * 3 + 7);
    const a = resizeBicubic(img, ow, oh, box, backing.subarray(5, 5 + ow * oh * 3)).data;
    useSimdResampler(false);
    const b = resizeBicubic(img, ow, oh, box).data;
    useSimdResampler(true);
    const d = byteDiff(a, b);
    assert.equal(d.count, 0, `${w}x${h} -> ${ow}x${oh} ${box ?? ''}: ${d.count} bytes differ (max ${d.max})`);
    assert.deepEqual([backing[4], backing[5 + ow * oh * 3]], [0, 0], 'nothing written outside the output');
  }
});

test('resizeBicubic to the same size returns an equal copy', () => {
  const data = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) & 255);
  const out = resizeBicubic({ width: 5, height: 4, data }, 5, 4);
  assert.deepEqual(out.data, data);
  assert.notEqual(out.data, data);
});

test('resizeBicubic of a flat colour stays flat (coefficients sum to one)', () => {
  const data = new Uint8Array(31 * 17 * 3).fill(200);
  for (const [w, h] of [[7, 3], [64, 40], [31, 50], [100, 17]] as const) {
    const out = resizeBicubic({ width: 31, height: 17, data }, w, h);
    assert.ok(out.data.every((v) => v === 200), `${w}x${h}`);
  }
});

test('resizeBicubic rejects empty or fractional targets', () => {
  const img = { width: 2, height: 2, data: new Uint8Array(12) };
  assert.throws(() => resizeBicubic(img, 0, 2), RangeError);
  assert.throws(() => resizeBicubic(img, 2.5, 2), RangeError);
});

interface BilinearCase extends ExpectedOutput {
  name: string; input: string; inSize: [number, number]; outSize: [number, number]; box: [number, number, number, number] | null;
}
const bilinear = processorIndex<{ pillow: string; resize: BilinearCase[] }>('bilinear');

// Expected bytes are Pillow's Image.resize(..., BILINEAR, box) output (Pillow 9.4, see the index).
for (const simd of [true, false]) {
  for (const c of bilinear.resize) {
    test(`resizeBilinear (${simd ? 'SIMD' : 'JS'}) is bit-identical to Pillow: ${c.name}`, async () => {
      assert.equal(useSimdResampler(simd), simd);
      try {
        const img = await processorInput('bilinear', c.input);
        assert.deepEqual([img.width, img.height], c.inSize);
        const [w, h] = c.outSize;
        const out = resizeBilinear(img, w, h, c.box ?? undefined);
        assert.deepEqual([out.width, out.height], [w, h]);
        assertExact('bilinear', out.data, c, c.name);
        assert.deepEqual(resizePil(img, w, h, 'bilinear', c.box ?? undefined).data, out.data);
      } finally {
        useSimdResampler(true);
      }
    });
  }
}

test('resizeBilinear: the SIMD and JS passes give the same bytes; a flat colour stays flat', () => {
  let seed = 777;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / (1 << 24);
  const cases: Array<[number, number, number, number]> = [[1, 1, 9, 4], [9, 4, 1, 1], [2, 2, 3, 3], [640, 480, 37, 29], [100, 100, 896, 896]];
  for (let r = 0; r < 16; r++) {
    cases.push([1 + Math.floor(rnd() * 400), 1 + Math.floor(rnd() * 400), 1 + Math.floor(rnd() * 400), 1 + Math.floor(rnd() * 400)]);
  }
  for (const [w, h, ow, oh] of cases) {
    const data = Uint8Array.from({ length: w * h * 3 }, () => (rnd() < 0.3 ? (rnd() < 0.5 ? 0 : 255) : Math.floor(rnd() * 256)));
    const img = { width: w, height: h, data };
    useSimdResampler(true);
    const a = resizeBilinear(img, ow, oh).data;
    useSimdResampler(false);
    const b = resizeBilinear(img, ow, oh).data;
    useSimdResampler(true);
    const d = byteDiff(a, b);
    assert.equal(d.count, 0, `${w}x${h} -> ${ow}x${oh}: ${d.count} bytes differ (max ${d.max})`);
    const flat = resizeBilinear({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(77) }, ow, oh).data;
    assert.ok(flat.every((v) => v === 77), `${w}x${h} -> ${ow}x${oh} flat`);
  }
});

test('pilFilterOf maps PIL resample codes; other filters are refused', () => {
  assert.equal(pilFilterOf(2), 'bilinear');
  assert.equal(pilFilterOf(3), 'bicubic');
  assert.equal(pilFilterOf(1), null);
  assert.equal(pilFilterOf('2'), null);
  const img = { width: 2, height: 2, data: new Uint8Array(12) };
  assert.throws(() => resizePil(img, 3, 3, 'lanczos' as never), RangeError);
});
