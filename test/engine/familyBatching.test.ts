import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Engine, GenerateInput } from '../../src/engine/engine.js';
import { fixturePath } from '../helpers/paths.js';

/**
 * What the engine does for every family, on the LLaVA ones (anyres images of different token
 * counts), Gemma 3 (image tokens attending both ways, across images, never split between
 * passes; sliding-window layers) and Llama 3.2 Vision (cross-attention to image states kept
 * with each sequence): batching gives each request the tokens it gets alone, and the
 * prefix cache reuses a repeated image's KV while different images never share it.
 */
const png = (rel: string) => `data:image/png;base64,${readFileSync(fixturePath(rel)).toString('base64')}`;

/** A long question, then one image. */
function askFirst(text: string, image: string, maxNewTokens: number): GenerateInput {
  return {
    messages: [{ role: 'user', content: [{ type: 'text' as const, text }, { type: 'image_url' as const, image_url: { url: image } }] }],
    sampling: { temperature: 0, maxNewTokens, ignoreEos: true },
  };
}

function ask(text: string, images: string[], maxNewTokens: number): GenerateInput {
  return {
    messages: [{ role: 'user', content: [...images.map((url) => ({ type: 'image_url' as const, image_url: { url } })), { type: 'text' as const, text }] }],
    sampling: { temperature: 0, maxNewTokens, ignoreEos: true },
  };
}

for (const [family, model, a, b, c] of [
  ['llava_next_mistral', 'golden-extra/llava_next_mistral/model', 'golden-extra/llava_next_mistral/cases/unpad_wide/image0.png', 'golden-extra/llava_next_mistral/cases/two_images/image1.png', 'golden-extra/llava_next_mistral/cases/one_image/image0.png'],
  ['llava_onevision', 'golden/llava_onevision/model', 'golden-extra/llava_onevision/cases/anyres_max_downscale/image0.png', 'golden-extra/llava_onevision/cases/very_tall/image0.png', 'golden-extra/llava_onevision/cases/very_wide/image0.png'],
  ['mllama', 'golden/mllama/model', 'golden-extra/mllama/cases/two_tiles_tall/image0.png', 'golden-extra/mllama/cases/four_tiles_2x2_downscale/image0.png', 'golden-extra/mllama/cases/one_tile_upscale/image0.png'],
  ['minicpmv', 'golden/minicpmv/model', 'golden-extra/minicpmv/cases/wide_2x1/image0.png', 'golden-extra/minicpmv/cases/tall_1x3/image0.png', 'golden-extra/minicpmv/cases/small_no_slicing/image0.png'],
  ['deepseek_vl2', 'golden/deepseek_vl2/model', 'golden-extra/deepseek_vl2/cases/wide_4x1/image0.png', 'golden-extra/deepseek_vl2/cases/tall_1x3/image0.png', 'golden-extra/deepseek_vl2/cases/small_image_1x1/image0.png'],
  ['deepseek_vl2_small', 'golden-extra/deepseek_vl2_small/model', 'golden-extra/deepseek_vl2/cases/wide_4x1/image0.png', 'golden-extra/deepseek_vl2/cases/tall_1x3/image0.png', 'golden-extra/deepseek_vl2/cases/small_image_1x1/image0.png'],
  ['gemma3_sliding', 'golden-extra/gemma3_sliding/model', 'golden-extra/gemma3/cases/two_images/image0.png', 'golden-extra/gemma3/cases/two_images/image1.png', 'golden-extra/gemma3/cases/multi_turn/image0.png'],
] as const) {
  test(`${family}: concurrent requests get the tokens they get alone; a repeated image hits the prefix cache, another image does not`, async () => {
    const A = png(a);
    const B = png(b);
    const C = png(c);
    const workload = [ask('What is this?', [A], 10), ask('Describe.', [B], 8), ask('Hello!', [], 12), ask('Compare.', [B, A], 6)];
    // Asked after [B, A]: B's KV may be reused only where it does not depend on the second image.
    const swapped = ask('Compare.', [B, C], 6);
    // Text before an image is the same whatever the image, except where it sees the image (Llama 3.2 Vision).
    const LONG = 'Please look very carefully at the following picture and then tell me, in a few short words, what it shows.';
    const firstA = askFirst(LONG, A, 4);
    const firstC = askFirst(LONG, C, 4);
    // A second turn: the first question, its answer, another question.
    const turnTwo = (answer: string): GenerateInput => ({
      messages: [...ask('What is this?', [A], 10).messages!, { role: 'assistant', content: answer }, { role: 'user', content: 'And what colour is it?' }],
      sampling: { temperature: 0, maxNewTokens: 6, ignoreEos: true },
    });
    let followUp: GenerateInput;
    const solo = await Engine.load({ modelPath: fixturePath(model), disableRadixCache: true });
    const reference: number[][] = [];
    try {
      for (const w of [...workload, swapped, firstC]) reference.push((await solo.generate(w)).tokenIds);
      followUp = turnTwo((await solo.generate(workload[0]!)).text);
      reference.push((await solo.generate(followUp)).tokenIds);
    } finally {
      await solo.shutdown();
    }
    const engine = await Engine.load({ modelPath: fixturePath(model), chunkedPrefillSize: 16 });
    try {
      const results = await Promise.all(workload.map((w) => engine.generate(w)));
      results.forEach((r, i) => assert.deepEqual(r.tokenIds, reference[i], `request ${i}`));
      const again = await engine.generate(ask('What is this?', [A], 10));
      assert.deepEqual(again.tokenIds, reference[0]);
      // All of it but the last page's share is reused (Llama 3.2 Vision's image is one token: prompts are short).
      assert.ok((again.usage.cachedTokens ?? 0) >= again.usage.promptTokens - 16, `cached ${again.usage.cachedTokens} of ${again.usage.promptTokens}`);
      // An image not seen before, in the same prompt: only the text before the image can be reused.
      const other = await engine.generate(ask('What is this?', [C], 10));
      // Nothing from the image's first embedding row on (markers before it are text, the same for any image).
      const firstRow = (await engine.prepare(ask('What is this?', [C], 10))).images[0]!.start;
      assert.ok((other.usage.cachedTokens ?? 0) <= firstRow, `a new image shares no image KV (cached ${other.usage.cachedTokens} of ${other.usage.promptTokens}; its rows start at ${firstRow})`);
      const r = await engine.generate(swapped);
      assert.deepEqual(r.tokenIds, reference[workload.length], 'the first image of [B, C] after [B, A]');
      // Gemma 3's image tokens see every image of the prompt, Llama 3.2 Vision's first tokens too:
      // nothing of B may come from [B, A].
      if (family.startsWith('gemma3') || family === 'mllama') assert.ok((r.usage.cachedTokens ?? 0) < 16, `cached ${r.usage.cachedTokens}`);
      else assert.ok((r.usage.cachedTokens ?? 0) > 16, `B's KV is reused (cached ${r.usage.cachedTokens})`);
      await engine.generate(firstA);
      const f = await engine.generate(firstC);
      assert.deepEqual(f.tokenIds, reference[workload.length + 1], 'the text before another image');
      if (family === 'mllama') assert.ok((f.usage.cachedTokens ?? 0) < 16, `text before an image sees it: cached ${f.usage.cachedTokens}`);
      // Sliding-window layers keep K/V only for the last window of a prompt and of a sequence: with a
      // 10-token window, the text before the image (long gone from it) is not there to continue from.
      else if (family !== 'gemma3_sliding') assert.ok((f.usage.cachedTokens ?? 0) >= 16, `the text before the image is reused: cached ${f.usage.cachedTokens}`);
      // The next turn of a chat continues from the whole first turn (the ring holds its end).
      await engine.generate(ask('What is this?', [A], 10));
      const t2 = await engine.generate(followUp!);
      assert.deepEqual(t2.tokenIds, reference[workload.length + 2], 'second turn');
      assert.ok((t2.usage.cachedTokens ?? 0) >= again.usage.promptTokens, `second turn: cached ${t2.usage.cachedTokens} of ${t2.usage.promptTokens}`);
    } finally {
      await engine.shutdown();
    }
  });
}
