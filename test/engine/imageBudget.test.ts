import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_IMAGE_MAX_TOKENS } from '../../src/engine/engine.js';
import { dataUri, imageMessages, makePng, withEngine } from '../helpers/checkpoints.js';
import { MODEL_PATH } from '../helpers/server.js';

/** Prompt tokens of one question about a 1120x840 picture (1,200 image tokens at the model's own limit). */
async function promptTokens(imageMaxTokens: number | undefined, detail?: 'low'): Promise<{ tokens: number; cap: number }> {
  const uri = dataUri(await makePng(1120, 840));
  return withEngine(MODEL_PATH, async (e) => {
    const messages = imageMessages(uri);
    if (detail) (messages[0]!.content as Array<{ type: string; image_url?: { detail?: string } }>)[0]!.image_url!.detail = detail;
    const r = await e.generate({ messages, sampling: { maxNewTokens: 1, temperature: 0 } });
    return { tokens: r.usage.promptTokens, cap: e.imageMaxTokens };
  }, imageMaxTokens === undefined ? {} : { imageMaxTokens });
}

test('--image-max-tokens caps the tokens of one image; 0 keeps the model limit; detail low still applies', async () => {
  const own = await promptTokens(0);
  const capped = await promptTokens(100);
  const byDefault = await promptTokens(undefined);
  const low = await promptTokens(undefined, 'low');
  // Text tokens are the same in all runs: the difference is the image's tokens.
  const text = own.tokens - (1120 / 28) * (840 / 28);
  assert.equal(own.cap, 0);
  assert.ok(capped.tokens - text <= 100 && capped.tokens - text >= 80, `capped image took ${capped.tokens - text} tokens`);
  assert.equal(byDefault.cap, DEFAULT_IMAGE_MAX_TOKENS);
  assert.ok(byDefault.tokens - text <= DEFAULT_IMAGE_MAX_TOKENS && byDefault.tokens - text > DEFAULT_IMAGE_MAX_TOKENS * 0.8, `default cap: ${byDefault.tokens - text} tokens`);
  // detail "low" (128 * 28 * 28 pixels) is below the default cap, so it decides.
  assert.ok(low.tokens - text <= 128 && low.tokens - text > 100, `detail low: ${low.tokens - text} tokens`);
});
