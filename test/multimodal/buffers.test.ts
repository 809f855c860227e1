import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Engine } from '../../src/engine/engine.js';
import { decodeImage } from '../../src/multimodal/decode.js';
import { resizeBicubic } from '../../src/multimodal/pilResample.js';
import { PixelBufferPool } from '../../src/multimodal/pixelBufferPool.js';
import { loadQwen2VLProcessorConfig, preprocessQwen2VL } from '../../src/models/qwen2_vl/imageProcessing.js';
import { fixturePath } from '../helpers/paths.js';
import { pilIndex, readPil } from './fixtures.js';

/** Reused memory must never change a result: stale contents are overwritten, scratch never leaks. */

test('PixelBufferPool reuses a returned buffer of a fitting size and drops the oldest beyond its cap', () => {
  const pool = new PixelBufferPool(1000);
  const a = pool.take(100);
  assert.equal(a.length, 100);
  pool.give(a.buffer as ArrayBuffer);
  assert.equal(pool.bytes, 400);
  assert.notEqual(pool.take(10).buffer, a.buffer, 'more than twice the size needed: not used');
  assert.notEqual(pool.take(101).buffer, a.buffer, 'too small: not used');
  const b = pool.take(60);
  assert.equal(b.buffer, a.buffer);
  assert.equal(b.length, 60);
  assert.equal(pool.bytes, 0);
  pool.give(new ArrayBuffer(400));
  pool.give(new ArrayBuffer(400));
  pool.give(new ArrayBuffer(400));
  assert.equal(pool.bytes, 800);
  pool.give(new ArrayBuffer(4000));
  assert.equal(pool.bytes, 800, 'a buffer larger than the cap is not kept');
});

test('resizing into a given buffer and through the reused scratch gives Pillow bytes every time', async () => {
  const cases = pilIndex.resize.slice(0, 3);
  const images = await Promise.all(cases.map(async (c) => decodeImage(readPil(c.input))));
  for (let round = 0; round < 2; round++) {
    for (const [i, c] of cases.entries()) {
      const [w, h] = c.outSize;
      const out = new Uint8Array(w * h * 3).fill(0xa5);
      const r = resizeBicubic(images[i]!, w, h, undefined, out);
      assert.equal(r.data, out);
      assert.deepEqual(out, readPil(c.expected), `${c.name}, round ${round}`);
    }
  }
  assert.throws(() => resizeBicubic(images[0]!, 10, 10, undefined, new Uint8Array(5)), /output buffer has 5 bytes, expected 300/);
});

test('preprocessing into a dirty recycled array gives the same pixels as into a fresh one', async () => {
  const cfg = loadQwen2VLProcessorConfig(fixturePath('golden/qwen2_5_vl/model'));
  const img = await decodeImage(readFileSync(fixturePath('golden-extra/qwen2_5_vl/cases/resize_multiwindow/image0.png')));
  const fresh = preprocessQwen2VL(img, cfg);
  const dirty = preprocessQwen2VL(img, cfg, {}, (n) => new Float32Array(n).fill(Number.NaN));
  assert.deepEqual(dirty.pixelValues, fresh.pixelValues);
});

test('the engine thread hands pixel buffers back, and a recycled buffer gives the same answer', async () => {
  const model = fixturePath('golden/qwen2_5_vl/model');
  const png = (rel: string) => `data:image/png;base64,${readFileSync(fixturePath(rel)).toString('base64')}`;
  const ask = (url: string) => ({
    messages: [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url } }, { type: 'text' as const, text: 'What is it?' }] }],
    sampling: { temperature: 0, maxNewTokens: 6, ignoreEos: true },
  });
  const a = png('golden/qwen2_5_vl/cases/chat_one_image/image0.png');
  const b = png('golden-extra/qwen2_5_vl/cases/two_images/image1.png');
  const fresh = await Engine.load({ modelPath: model, disableRadixCache: true, visionCacheMb: 0 });
  const want = [(await fresh.generate(ask(a))).tokenIds, (await fresh.generate(ask(b))).tokenIds];
  await fresh.shutdown();

  const engine = await Engine.load({ modelPath: model, disableRadixCache: true, visionCacheMb: 0 });
  try {
    const pool = (engine as unknown as { pixelPool: PixelBufferPool }).pixelPool;
    for (const [k, url] of [a, b, a, b].entries()) {
      assert.deepEqual((await engine.generate(ask(url))).tokenIds, want[k % 2], `request ${k}`);
      assert.ok(pool.bytes > 0, `request ${k}: the pixel buffer came back`);
    }
  } finally {
    await engine.shutdown();
  }
});
