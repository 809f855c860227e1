import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandImagePlaceholders } from '../../src/tokenizer/placeholders.js';
import { InvalidRequestError } from '../../src/errors.js';

const P = 9;

test('each placeholder becomes its image token count, ranges point at them', () => {
  const r = expandImagePlaceholders([1, P, 2, 3, P, 4], P, [3, 2]);
  assert.deepEqual(r.ids, [1, P, P, P, 2, 3, P, P, 4]);
  assert.deepEqual(r.imageRanges, [
    { start: 1, length: 3 },
    { start: 6, length: 2 },
  ]);
});

test('no images: ids unchanged', () => {
  const r = expandImagePlaceholders([1, 2, 3], P, []);
  assert.deepEqual(r, { ids: [1, 2, 3], imageRanges: [] });
});

test('placeholder / image count mismatch is an InvalidRequestError', () => {
  assert.throws(() => expandImagePlaceholders([1, P, 2], P, [4, 4]), InvalidRequestError);
  assert.throws(() => expandImagePlaceholders([1, P, P], P, [4]), InvalidRequestError);
  assert.throws(() => expandImagePlaceholders([1, P], P, [0]), RangeError);
});
