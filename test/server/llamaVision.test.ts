/**
 * The older seed page's command, `iris serve --model-path meta-llama/Llama-3.2-11B-Vision-Instruct
 * --chat-template llama_3_vision`, against a stand-in Hub serving a tiny Llama 3.2 Vision
 * checkpoint under that id: the seed's request shapes with the openai client and raw JSON posts
 * (as curl and requests send them), one image and several, streaming and not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { FakeHub, hubEnv, startFakeHub } from '../helpers/fakeHub.js';
import { fixturePath } from '../helpers/paths.js';
import { ImageServer, IrisServer, chatBody, dataUri, postJson, startImageServer, startIris } from '../helpers/server.js';

const ID = 'meta-llama/Llama-3.2-11B-Vision-Instruct';
let hub: FakeHub;
let root: string;
let iris: IrisServer;
let images: ImageServer;
let client: OpenAI;

before(async () => {
  hub = await startFakeHub();
  root = mkdtempSync(join(tmpdir(), 'iris-llama-vision-'));
  hub.addRepo({ id: ID, dir: fixturePath('golden/mllama/model') });
  [iris, images] = await Promise.all([
    startIris(['--chat-template', 'llama_3_vision', '--log-level', 'warning'], { modelPath: ID, env: { ...process.env, ...hubEnv(hub.url, root) } }),
    startImageServer(),
  ]);
  client = new OpenAI({ baseURL: `${iris.baseUrl}/v1`, apiKey: 'None', maxRetries: 0, timeout: 30_000 });
});
after(async () => {
  await Promise.all([iris?.stop(), images?.close(), hub?.close()]);
  rmSync(root, { recursive: true, force: true });
});

test('one image by URL with the openai client: answered under the Hub id, deterministic at temperature 0, the image counted', async () => {
  const req = {
    model: ID,
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'What is in this image?' }, { type: 'image_url' as const, image_url: { url: images.url('/image.png') } }] }],
    max_tokens: 12,
    temperature: 0,
  };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.model, ID);
  assert.equal(typeof a.choices[0]!.message.content, 'string');
  assert.equal(b.choices[0]!.message.content, a.choices[0]!.message.content);
  const text = await client.chat.completions.create({ ...req, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in this image?' }] }] });
  // The image is one <|image|> token (and, alone in its message, a newline) in the prompt; it reaches the model by cross-attention.
  assert.ok(a.usage!.prompt_tokens > text.usage!.prompt_tokens && a.usage!.prompt_tokens <= text.usage!.prompt_tokens + 2, `${a.usage!.prompt_tokens} vs ${text.usage!.prompt_tokens}`);
  assert.notEqual(text.choices[0]!.message.content, a.choices[0]!.message.content, 'the image changes the answer');
});

test('several images, as raw JSON posts (curl, requests) and through the openai client stream, agree', async () => {
  const parts = ['Compare these:', { url: images.url('/image.png') }, { url: images.url('/image.jpg') }, { url: dataUri(images.png2) }, 'What differs?'];
  const body = { ...chatBody(parts, { max_tokens: 10 }), model: ID };
  const raw = await postJson(iris.baseUrl, '/v1/chat/completions', body);
  assert.equal(raw.status, 200, raw.text);
  let streamed = '';
  const stream = await client.chat.completions.create({ ...(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming), stream: true });
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(streamed, raw.json.choices[0].message.content);
  const one = await postJson(iris.baseUrl, '/v1/chat/completions', { ...chatBody(['Compare these:', { url: images.url('/image.png') }, 'What differs?'], { max_tokens: 1 }), model: ID });
  // Two more <|image|> tokens; a message's only image is followed by a newline, several are not.
  assert.ok(raw.json.usage.prompt_tokens > one.json.usage.prompt_tokens, `${raw.json.usage.prompt_tokens} vs ${one.json.usage.prompt_tokens}`);
  assert.notEqual(raw.json.choices[0].message.content, (await postJson(iris.baseUrl, '/v1/chat/completions', { ...chatBody(['Compare these:', { url: images.url('/image.png') }, 'What differs?'], { max_tokens: 10 }), model: ID })).json.choices[0].message.content);
});
