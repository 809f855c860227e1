import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeImage } from '../../src/multimodal/decode.js';
import { resizeBicubic } from '../../src/multimodal/pilResample.js';
import { byteDiff, pilIndex, readPil } from './fixtures.js';

// Expected bytes are Pillow's Image.resize(..., BICUBIC) output (see index.json "pillow").
for (const c of pilIndex.resize) {
  test(`resizeBicubic is bit-identical to Pillow: ${c.name}`, async () => {
    const img = await decodeImage(readPil(c.input));
    assert.deepEqual([img.width, img.height], c.inSize);
    const [w, h] = c.outSize;
    const out = resizeBicubic(img, w, h);
    assert.deepEqual([out.width, out.height], [w, h]);
    const expected = readPil(c.expected);
    assert.equal(out.data.length, expected.length);
    const d = byteDiff(out.data, expected);
    assert.equal(d.count, 0, `${d.count} bytes differ (max ${d.max})`);
  });
}

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
