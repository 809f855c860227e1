import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Engine, GenerateInput } from '../../src/engine/engine.js';
import { fixturePath } from '../helpers/paths.js';

const MODEL = fixturePath('golden/qwen2_5_vl/model');
const png = (rel: string) => `data:image/png;base64,${readFileSync(fixturePath(rel)).toString('base64')}`;
const IMG_A = png('golden/qwen2_5_vl/cases/chat_one_image/image0.png');
const IMG_B = png('golden-extra/qwen2_5_vl/cases/two_images/image1.png');
const IMG_C = png('golden-extra/qwen2_5_vl/cases/resize_multiwindow/image0.png');

function ask(text: string, images: string[] = [], maxNewTokens = 24): GenerateInput {
  return {
    messages: [{ role: 'user', content: [...images.map((url) => ({ type: 'image_url' as const, image_url: { url } })), { type: 'text' as const, text }] }],
    sampling: { temperature: 0, maxNewTokens, ignoreEos: true },
  };
}

const workload: GenerateInput[] = [
  ask('What is in this image?', [IMG_A], 30),
  ask('Describe it.', [IMG_B], 12),
  ask('Hello there, how are you today?', [], 40),
  ask('Compare these two pictures.', [IMG_C, IMG_A], 20),
  ask('Count the shapes.', [IMG_C], 25),
  ask('Short one', [], 5),
];

let reference: number[][] = [];

before(async () => {
  // Each request alone, on an engine with no prefix cache: the reference.
  const solo = await Engine.load({ modelPath: MODEL, disableRadixCache: true });
  try {
    reference = [];
    for (const w of workload) reference.push((await solo.generate(w)).tokenIds);
  } finally {
    await solo.shutdown();
  }
});

test('concurrent requests get exactly the tokens they get alone', async () => {
  const engine = await Engine.load({ modelPath: MODEL, disableRadixCache: true });
  try {
    const results = await Promise.all(workload.map((w) => engine.generate(w)));
    results.forEach((r, i) => assert.deepEqual(r.tokenIds, reference[i], `request ${i}`));
  } finally {
    await engine.shutdown();
  }
});

test('concurrent streams with a tiny prefill budget (chunked prefill mixed with decoding) agree too', async () => {
  const engine = await Engine.load({ modelPath: MODEL, chunkedPrefillSize: 7 });
  try {
    const results = await Promise.all(
      workload.map(async (w) => {
        const ids: number[] = [];
        for await (const c of engine.generateStream(w)) ids.push(...c.tokenIds);
        return ids;
      }),
    );
    results.forEach((ids, i) => assert.deepEqual(ids, reference[i], `request ${i}`));
  } finally {
    await engine.shutdown();
  }
});

test('a repeated image is served from the prefix cache with identical output', async () => {
  const engine = await Engine.load({ modelPath: MODEL });
  try {
    const first = await engine.generate(workload[0]!);
    assert.equal(first.usage.cachedTokens, 0);
    const again = await engine.generate(workload[0]!);
    assert.deepEqual(again.tokenIds, first.tokenIds);
    // The image sits after the system prompt; all of it (and more) comes from the cache.
    const imageEnd = first.usage.promptTokens - 12;
    assert.ok(again.usage.cachedTokens! >= imageEnd, `cached ${again.usage.cachedTokens} of ${first.usage.promptTokens}`);
    assert.ok(again.usage.cachedTokens! < first.usage.promptTokens);
    // Another question about the same image (another user) reuses the image's KV as well.
    const other = await engine.generate(ask('Where is it?', [IMG_A], 30));
    assert.ok(other.usage.cachedTokens! >= imageEnd - 16, `cached ${other.usage.cachedTokens}`);
    // A different image with the same placeholder layout must not hit past the image start.
    const different = await engine.generate(ask('What is in this image?', [IMG_B], 30));
    assert.ok(different.usage.cachedTokens! < imageEnd - 16, `different image cached ${different.usage.cachedTokens}`);
    assert.deepEqual(different.tokenIds, await soloTokens(ask('What is in this image?', [IMG_B], 30)));
  } finally {
    await engine.shutdown();
  }
});

async function soloTokens(w: GenerateInput): Promise<number[]> {
  const solo = await Engine.load({ modelPath: MODEL, disableRadixCache: true });
  try {
    return (await solo.generate(w)).tokenIds;
  } finally {
    await solo.shutdown();
  }
}

test('a follow-up turn reuses the previous turn', async () => {
  const engine = await Engine.load({ modelPath: MODEL });
  try {
    const turn1 = ask('What is in this image?', [IMG_A], 16);
    const r1 = await engine.generate(turn1);
    const followUp: GenerateInput = {
      messages: [...turn1.messages!, { role: 'assistant', content: r1.text }, { role: 'user', content: 'And what colour is it?' }],
      sampling: { temperature: 0, maxNewTokens: 16, ignoreEos: true },
    };
    const r2 = await engine.generate(followUp);
    assert.ok(r2.usage.cachedTokens! >= r1.usage.promptTokens - 16, `cached ${r2.usage.cachedTokens}, first prompt ${r1.usage.promptTokens}`);
    assert.deepEqual(r2.tokenIds, await soloTokens(followUp));
  } finally {
    await engine.shutdown();
  }
});

test('a KV pool too small for the load preempts, and every request still completes correctly', async () => {
  // 15 pages of 16 tokens: each request alone fits (at most 14 pages), no two together do.
  const long = workload.filter((_, i) => i !== 3).map((w) => ({ ...w, sampling: { ...w.sampling, maxNewTokens: 100 } }));
  const expected: number[][] = [];
  for (const w of long) expected.push(await soloTokens(w));
  const engine = await Engine.load({ modelPath: MODEL, maxTotalTokens: 240 });
  try {
    const results = await Promise.all(long.map((w) => engine.generate(w)));
    results.forEach((r, i) => assert.deepEqual(r.tokenIds, expected[i], `request ${i}`));
    const stats = await engine.stats();
    assert.ok(stats.preemptions > 0, 'expected preemptions');
    assert.equal(stats.usedPages, 0);
  } finally {
    await engine.shutdown();
  }
});

test('after a burst with aborted requests, no page is held at idle', async () => {
  const engine = await Engine.load({ modelPath: MODEL });
  try {
    const runs = workload.concat(workload).map(async (w, i) => {
      const ac = new AbortController();
      const it = engine.generateStream({ ...w, signal: ac.signal, sampling: { ...w.sampling, maxNewTokens: 200 } });
      let n = 0;
      try {
        for await (const c of it) {
          n += c.tokenIds.length;
          if (i % 2 === 0 && n >= 3) ac.abort();
          if (i % 3 === 0 && n >= 2) break;
        }
      } catch {
        /* aborted */
      }
    });
    await Promise.all(runs);
    let stats = await engine.stats();
    for (let t = 0; t < 100 && (stats.running > 0 || stats.usedPages > 0); t++) {
      await new Promise((r) => setTimeout(r, 20));
      stats = await engine.stats();
    }
    assert.equal(stats.running, 0);
    assert.equal(stats.waiting, 0);
    assert.equal(stats.usedPages, 0);
    assert.equal(stats.freePages + stats.cachedPages, stats.totalPages);
  } finally {
    await engine.shutdown();
  }
});
