import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandImagePlaceholders, locateImages } from '../../src/tokenizer/placeholders.js';
import { InvalidRequestError } from '../../src/errors.js';

const P = 9;

test('each placeholder becomes its image token count, ranges point at them', () => {
  const ids = expandImagePlaceholders([1, P, 2, 3, P, 4], P, [3, 2]);
  assert.deepEqual(ids, [1, P, P, P, 2, 3, P, P, 4]);
  assert.deepEqual(locateImages(ids, P, [3, 2]), [
    { start: 1, length: 3 },
    { start: 6, length: 2 },
  ]);
});

test('a placeholder can become a layout of markers, separators and image tokens', () => {
  const BOI = 7;
  const EOI = 8;
  const T = 5;
  // The template writes BOI; the family writes BOI, two slices of image tokens split by a separator, EOI.
  const ids = expandImagePlaceholders([1, BOI, 2, BOI], BOI, [[BOI, T, T, 3, T, EOI], [BOI, T, EOI]]);
  assert.deepEqual(ids, [1, BOI, T, T, 3, T, EOI, 2, BOI, T, EOI]);
  const ranges = locateImages(ids, T, [3, 1]);
  assert.equal(ranges[0]!.start, 2);
  assert.equal(ranges[0]!.length, 4);
  assert.deepEqual(Array.from(ranges[0]!.rowAt!), [0, 1, -1, 2]);
  assert.deepEqual(ranges[1], { start: 9, length: 1 });
});

test('an image of no embedding rows is its one token, which keeps its embedding', () => {
  assert.deepEqual(locateImages([1, P, 2, P, P, 3], P, [0, 0, 0]), [
    { start: 1, length: 1, rowAt: Int32Array.of(-1) },
    { start: 3, length: 1, rowAt: Int32Array.of(-1) },
    { start: 4, length: 1, rowAt: Int32Array.of(-1) },
  ]);
});

test('no images: ids unchanged', () => {
  assert.deepEqual(expandImagePlaceholders([1, 2, 3], P, []), [1, 2, 3]);
  assert.deepEqual(locateImages([1, 2, 3], P, []), []);
});

test('placeholder / image count mismatch is an InvalidRequestError', () => {
  assert.throws(() => expandImagePlaceholders([1, P, 2], P, [4, 4]), InvalidRequestError);
  assert.throws(() => expandImagePlaceholders([1, P, P], P, [4]), InvalidRequestError);
  assert.throws(() => expandImagePlaceholders([1, P], P, [0]), RangeError);
  assert.throws(() => locateImages([1, P, P], P, [1]), InvalidRequestError);
  assert.throws(() => locateImages([1, P], P, [-1]), RangeError);
  assert.throws(() => locateImages([1, P], P, [0, 1]), InvalidRequestError);
});
