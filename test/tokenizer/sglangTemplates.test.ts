import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChatTemplate } from '../../src/tokenizer/chatTemplate.js';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';
import { dataUri, makePng, withEngine } from '../helpers/checkpoints.js';
import { fixturePath } from '../helpers/paths.js';

const LLAVA = fixturePath('golden/llava/model');
const img = { type: 'image_url' as const, image_url: { url: 'data:image/png;base64,AAAA' } };
const one: ChatMessage[] = [{ role: 'user', content: [img, { type: 'text', text: 'What is this?' }] }];
const history: ChatMessage[] = [
  { role: 'system', content: 'Be terse.' },
  { role: 'user', content: 'Hi!' },
  { role: 'assistant', content: 'Sure.' },
  { role: 'user', content: [{ type: 'text', text: 'Compare ' }, img, img, { type: 'text', text: ' these.' }] },
];
const render = (name: string, messages: ChatMessage[]) => ChatTemplate.load(LLAVA, name).renderChat(messages, { addGenerationPrompt: true }).prompt;

test("SGLang's vicuna_v1.1: default system prompt, USER/ASSISTANT turns, </s> after an answer, one image as <image>\\n", () => {
  const sys = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
  assert.equal(render('vicuna_v1.1', one), `${sys} USER: <image>\nWhat is this? ASSISTANT:`);
  assert.equal(render('vicuna_v1.1', history), 'Be terse. USER: Hi! ASSISTANT: Sure.</s>USER: Compare <image><image> these. ASSISTANT:');
});

test("SGLang's llava_llama_3 and chatml-llava render as SGLang's conversation templates do", () => {
  assert.equal(
    render('llava_llama_3', history),
    '<|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCompare <image><image> these.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  );
  assert.match(render('llava_llama_3', one), /^<\|start_header_id\|>system<\|end_header_id\|>\n\nYou are a helpful language and vision assistant\./);
  assert.equal(render('chatml-llava', one), '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(render('chatml-llava', history), '<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nSure.<|im_end|>\n<|im_start|>user\nCompare <image><image> these.<|im_end|>\n<|im_start|>assistant\n');
});

test('a LLaVA model answers about two images with --chat-template vicuna_v1.1', async () => {
  const uri = dataUri(await makePng(60, 40));
  const r = await withEngine(LLAVA, (e) => e.generate({
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Compare ' }, { type: 'image_url', image_url: { url: uri } }, { type: 'image_url', image_url: { url: uri } }] }],
    sampling: { maxNewTokens: 3, temperature: 0, ignoreEos: true },
  }), { chatTemplate: 'vicuna_v1.1' });
  assert.match(r.prompt!, /USER: Compare <image><image> ASSISTANT:$/);
  // Two images of 36 tokens each, plus the text.
  assert.ok(r.usage.promptTokens > 72, `${r.usage.promptTokens} prompt tokens`);
  assert.equal(r.tokenIds.length, 3);
});
