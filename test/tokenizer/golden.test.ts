import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { ChatTemplate } from '../../src/tokenizer/chatTemplate.js';
import { expandImagePlaceholders, locateImages } from '../../src/tokenizer/placeholders.js';
import { IncrementalDetokenizer } from '../../src/tokenizer/detokenizer.js';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';

// Tests run from dist/test/tokenizer; fixtures stay in the source tree.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const golden = (...p: string[]) => join(root, 'test', 'fixtures', 'golden', ...p);

interface ChatCase {
  name: string;
  dir: string;
  messages: ChatMessage[];
  num_image_tokens: number[];
  rendered_prompt: string;
  expected: { prompt_tokens: number; completion_text: string; completion_token_ids: number[] };
}

for (const model of ['qwen2_5_vl', 'qwen2_vl']) {
  const modelDir = golden(model, 'model');
  const cases = JSON.parse(readFileSync(golden(model, 'chat_cases.json'), 'utf8')).cases as ChatCase[];
  const tok = TextTokenizer.load(modelDir);
  const template = ChatTemplate.load(modelDir);

  for (const c of cases) {
    test(`${model}/${c.name}: rendered prompt equals the reference`, () => {
      assert.equal(template.source, 'chat_template.json');
      const r = template.renderChat(c.messages, { addGenerationPrompt: true });
      assert.equal(r.prompt, c.rendered_prompt);
      assert.equal(r.contentFormat, 'openai');
      assert.equal(r.images.length, 1);
      assert.ok(r.images[0].url.startsWith('data:image/png;base64,'));
    });

    test(`${model}/${c.name}: prompt ids after placeholder expansion equal the reference`, () => {
      const ids = tok.encode(template.render(c.messages, { addGenerationPrompt: true }));
      const imageTokenId = tok.tokenToId('<|image_pad|>')!;
      const expanded = expandImagePlaceholders(ids, imageTokenId, c.num_image_tokens);
      const imageRanges = locateImages(expanded, imageTokenId, c.num_image_tokens);
      assert.equal(expanded.length, c.expected.prompt_tokens);
      const oracle = JSON.parse(readFileSync(golden(model, c.dir, 'oracle.json'), 'utf8')) as { prompt_ids: number[] };
      assert.deepEqual(expanded, oracle.prompt_ids);
      assert.equal(imageRanges.length, 1);
      assert.equal(imageRanges[0].length, c.num_image_tokens[0]);
      assert.ok(expanded.slice(imageRanges[0].start, imageRanges[0].start + imageRanges[0].length).every((t) => t === imageTokenId));
      assert.equal(expanded[imageRanges[0].start - 1], tok.tokenToId('<|vision_start|>'));
      assert.equal(expanded[imageRanges[0].start + imageRanges[0].length], tok.tokenToId('<|vision_end|>'));
    });

    test(`${model}/${c.name}: completion decodes to the reference text, at once and incrementally`, () => {
      const ids = c.expected.completion_token_ids;
      assert.equal(tok.decode(ids, { skipSpecialTokens: true }), c.expected.completion_text);
      const d = new IncrementalDetokenizer(tok, { skipSpecialTokens: true });
      let streamed = '';
      for (const id of ids) streamed += d.push(id);
      streamed += d.flush();
      assert.equal(streamed, c.expected.completion_text);
    });
  }
}
