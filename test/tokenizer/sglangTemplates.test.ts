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

test("SGLang's llama_3_vision and gemma-it render as SGLang's conversation templates do", () => {
  assert.equal(
    render('llama_3_vision', history),
    '<|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nCompare <|image|><|image|> these.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  );
  assert.match(render('llama_3_vision', one), /<\|start_header_id\|>user<\|end_header_id\|>\n\n<\|image\|>\nWhat is this\?<\|eot_id\|>/);
  assert.equal(render('gemma-it', one), '<start_of_turn>user\nYou are a helpful assistant.\n\n<start_of_image>\nWhat is this?<end_of_turn>\n<start_of_turn>model\n');
  assert.equal(
    render('gemma-it', history),
    '<start_of_turn>user\nBe terse.\n\nHi!<end_of_turn>\n<start_of_turn>model\nSure.<end_of_turn>\n<start_of_turn>user\nCompare <start_of_image><start_of_image> these.<end_of_turn>\n<start_of_turn>model\n',
  );
});

test('Llama 3.2 Vision answers about one and two images with --chat-template llama_3_vision', async () => {
  const uri = dataUri(await makePng(60, 40));
  const MLLAMA = fixturePath('golden/mllama/model');
  for (const images of [1, 2]) {
    const r = await withEngine(MLLAMA, (e) => e.generate({
      messages: [{ role: 'user', content: [...Array.from({ length: images }, () => ({ type: 'image_url' as const, image_url: { url: uri } })), { type: 'text', text: 'What is this?' }] }],
      sampling: { maxNewTokens: 3, temperature: 0, ignoreEos: true },
    }), { chatTemplate: 'llama_3_vision' });
    assert.match(r.prompt!, images === 1 ? /<\|image\|>\nWhat is this\?<\|eot_id\|>/ : /<\|image\|><\|image\|>What is this\?<\|eot_id\|>/);
    assert.equal(r.tokenIds.length, 3);
  }
});

test("SGLang's minicpmv renders as SGLang's conversation template does, and a MiniCPM-V model answers with it", async () => {
  assert.equal(render('minicpmv', one), '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n(<image>./</image>)\nWhat is this?<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(
    render('minicpmv', history),
    '<|im_start|>system\nBe terse..<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nSure.<|im_end|>\n<|im_start|>user\nCompare (<image>./</image>)(<image>./</image>) these.<|im_end|>\n<|im_start|>assistant\n',
  );
  const uri = dataUri(await makePng(60, 40));
  const r = await withEngine(fixturePath('golden/minicpmv/model'), (e) => e.generate({
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: uri } }, { type: 'text', text: 'What is this?' }] }],
    sampling: { maxNewTokens: 3, temperature: 0, ignoreEos: true },
  }), { chatTemplate: 'minicpmv' });
  assert.match(r.prompt!, /^<\|im_start\|>system\nYou are a helpful assistant\.<\|im_end\|>/);
  assert.equal(r.tokenIds.length, 3);
});
