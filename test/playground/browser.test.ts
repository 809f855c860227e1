import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page, Request } from 'playwright-core';
import { Browser, PageWatch, browserSkipReason, launchBrowser, watchPage } from '../helpers/browser.js';
import { fixturePath } from '../helpers/paths.js';
import { IrisServer, dataUri, getJson, postJson, startIris } from '../helpers/server.js';

/**
 * The playground page in headless Chromium against `iris serve` on the built-in model. Answers
 * are checked against what the HTTP API itself answers for the same conversation at temperature 0.
 */

// Functions given to page.evaluate run in the browser; the project compiles without the DOM
// library, so these are that side's globals.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any, window: any, location: any, sessionStorage: any, localStorage: any;
declare const DataTransfer: any, DragEvent: any, ClipboardEvent: any;

const skipReason = browserSkipReason();
if (skipReason) process.stderr.write(`${skipReason}\n`);
// Each test, not the suites, carries the skip, so the runner counts them as skipped.
const SKIP = { skip: skipReason ?? false };

const MODEL = 'iris-shapes-v1';
const STAR_HEART = fixturePath('shapes/s20_04_0.png');
const OTHER = fixturePath('shapes/s20_01_0.png');
const MAX_TOKENS = 64;

type Message = { role: string; content: unknown };

const imagePart = (file: string) => ({ type: 'image_url', image_url: { url: dataUri(readFileSync(file)), detail: 'auto' } });
const textPart = (text: string) => ({ type: 'text', text });

/** What the API answers for `messages`, greedily, with the page's settings. */
async function apiAnswer(baseUrl: string, messages: Message[], headers: Record<string, string> = {}): Promise<string> {
  const res = await postJson(baseUrl, '/v1/chat/completions', { model: MODEL, messages, temperature: 0, max_tokens: MAX_TOKENS }, { headers });
  assert.equal(res.status, 200, res.text);
  return res.json.choices[0].message.content;
}

/** Text as a browser lays it out: runs of whitespace are one space. */
const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

let browser: Browser;
let page: Page;
let watch: PageWatch;

async function openPage(baseUrl: string): Promise<void> {
  page = await browser.context.newPage();
  watch = watchPage(page, baseUrl);
  await page.goto(`${baseUrl}/`);
}

/** Sets greedy decoding and the answer length the API comparisons use. */
async function greedy(): Promise<void> {
  await page.getByTestId('temperature').fill('0');
  await page.getByTestId('max-tokens').fill(String(MAX_TOKENS));
}

/** Sends the composer's content; waits for the answer to finish. Returns its text, stats and request body. */
async function send(question: string, files: string[] = []): Promise<{ text: string; stats: string; body: Record<string, unknown>; request: Request }> {
  const index = await page.getByTestId('assistant-message').count();
  if (files.length) await page.getByTestId('image-input').setInputFiles(files);
  await page.getByTestId('prompt').fill(question);
  const requested = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/v1/chat/completions'));
  await page.getByTestId('send').click();
  const request = await requested;
  const stats = page.getByTestId('stats').nth(index);
  await stats.filter({ hasText: 'cached tokens' }).waitFor({ timeout: 20_000 });
  return { text: await page.getByTestId('assistant-message').nth(index).innerText(), stats: (await stats.textContent()) ?? '', body: request.postDataJSON(), request };
}

const cachedTokens = (stats: string) => Number(/(\d+) cached tokens/.exec(stats)?.[1] ?? NaN);

describe('playground in Chromium', () => {
  let iris: IrisServer;
  before(async () => {
    if (skipReason) return;
    [iris, browser] = await Promise.all([startIris([], { modelPath: null }), launchBrowser()]);
  });
  after(async () => {
    if (skipReason) return;
    await Promise.all([browser?.close(), iris?.stop()]);
  });
  beforeEach(async () => {
    if (skipReason) return;
    await openPage(iris.baseUrl);
  });
  afterEach(async () => {
    if (skipReason) return;
    const problems = watch.problems();
    await page.close();
    assert.deepEqual(problems, []);
  });

  test('shows the served model; a picture and a follow-up get the API answers', SKIP, async () => {
    await page.getByTestId('model-name').filter({ hasText: MODEL }).waitFor();
    assert.equal(await page.getByTestId('model-name').textContent(), MODEL);
    await greedy();

    const q1 = 'What is in this image?';
    const first = await send(q1, [STAR_HEART]);
    const turn1: Message = { role: 'user', content: [imagePart(STAR_HEART), textPart(q1)] };
    assert.deepEqual(first.body.messages, [turn1]);
    assert.equal(first.body.stream, true);
    assert.deepEqual(first.body.stream_options, { include_usage: true });
    assert.equal(first.body.temperature, 0);
    const answer1 = await apiAnswer(iris.baseUrl, [turn1]);
    assert.ok(answer1.trim().length > 0);
    assert.equal(squash(first.text), squash(answer1));
    assert.match(first.stats, /TTFT \d+ ms · \d+ tokens?, [\d.]+ tokens\/s · \d+ cached tokens/);
    // The image was sent and nothing is left waiting in the composer.
    assert.equal(await page.getByTestId('remove-image').count(), 0);
    assert.equal(await page.getByTestId('prompt').inputValue(), '');

    const q2 = 'How many shapes are there?';
    const second = await send(q2);
    const history: Message[] = [turn1, { role: 'assistant', content: answer1 }, { role: 'user', content: [textPart(q2)] }];
    assert.deepEqual(second.body.messages, history, 'the whole conversation, first image included');
    assert.equal(squash(second.text), squash(await apiAnswer(iris.baseUrl, history)));
    // The first turn's prompt is already in the prefix cache.
    assert.ok(cachedTokens(second.stats) > 0, second.stats);
  });

  test('images by drop and paste, several in one message, each removable', SKIP, async () => {
    await greedy();
    const b64 = (file: string) => readFileSync(file).toString('base64');
    const dropOrPaste = (kind: 'drop' | 'paste', name: string, data: string) =>
      page.evaluate(
        ({ kind, name, data }) => {
          const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], name, { type: 'image/png' }));
          const target = document.getElementById(kind === 'drop' ? 'transcript' : 'prompt')!;
          const ev = kind === 'drop' ? new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }) : new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
          target.dispatchEvent(ev);
        },
        { kind, name, data },
      );
    await dropOrPaste('drop', 'a.png', b64(STAR_HEART));
    await dropOrPaste('paste', 'b.png', b64(OTHER));
    await dropOrPaste('drop', 'c.png', b64(STAR_HEART));
    const removes = page.getByTestId('remove-image');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="remove-image"]').length === 3);
    await page.getByRole('button', { name: 'Remove c.png' }).click();
    assert.equal(await removes.count(), 2);
    assert.deepEqual(await page.locator('.attachments img').evaluateAll((imgs) => imgs.map((i) => (i as unknown as { alt: string }).alt)), ['a.png', 'b.png']);

    const q = 'Describe both images.';
    const sent = await send(q);
    const turn: Message = { role: 'user', content: [imagePart(STAR_HEART), imagePart(OTHER), textPart(q)] };
    assert.deepEqual(sent.body.messages, [turn]);
    assert.equal(squash(sent.text), squash(await apiAnswer(iris.baseUrl, [turn])));
  });

  test('stop keeps a partial answer; generation ends and the page stays usable', SKIP, async () => {
    await greedy();
    // A long answer: the request is rewritten to ignore the end-of-sequence token.
    await page.route('**/v1/chat/completions', (route) => route.continue({ postData: JSON.stringify({ ...route.request().postDataJSON(), max_tokens: 3000, ignore_eos: true }) }));
    await page.getByTestId('image-input').setInputFiles(STAR_HEART);
    await page.getByTestId('prompt').fill('What is in this image?');
    await page.getByTestId('send').click();
    const answer = page.getByTestId('assistant-message').first();
    await page.waitForFunction(() => (document.querySelector('[data-testid="assistant-message"]')?.textContent ?? '').length > 80, undefined, { timeout: 20_000 });
    assert.equal(await page.getByTestId('send').isDisabled(), true, 'one answer at a time');
    await page.getByTestId('stop').click();
    await page.getByTestId('stats').first().filter({ hasText: 'stopped' }).waitFor({ timeout: 5000 });
    const partial = await answer.innerText();
    assert.ok(partial.length > 80);
    await page.waitForTimeout(300);
    assert.equal(await answer.innerText(), partial, 'nothing arrives after stop');
    assert.equal(await page.getByTestId('stop').isDisabled(), true);

    // The server let go of the request: nothing is left running.
    const deadline = Date.now() + 5000;
    for (;;) {
      const m = await fetch(`${iris.baseUrl}/metrics`).then((r) => r.text());
      if (/^iris_num_running_reqs 0$/m.test(m)) break;
      assert.ok(Date.now() < deadline, 'the stopped request is still running');
      await new Promise((r) => setTimeout(r, 100));
    }

    await page.unroute('**/v1/chat/completions');
    const next = await send('How many shapes are there?');
    assert.ok(next.text.trim().length > 0);
    const messages = next.body.messages as Message[];
    assert.equal(messages.length, 3);
    assert.equal(messages[1]!.role, 'assistant');
    assert.equal(squash(messages[1]!.content as string), squash(partial), 'the partial answer stays in the conversation');
  });

  test('a broken image shows the server message; the message can be fixed and sent', SKIP, async () => {
    await greedy();
    watch.allowStatus(400);
    const dir = mkdtempSync(join(tmpdir(), 'iris-playground-'));
    try {
      const broken = join(dir, 'broken.png');
      writeFileSync(broken, 'this is not a PNG file');
      const q = 'What is in this image?';
      const refused = await postJson(iris.baseUrl, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: [imagePart(broken), textPart(q)] }], max_tokens: 8 });
      assert.equal(refused.status, 400);

      await page.getByTestId('image-input').setInputFiles(broken);
      await page.getByTestId('prompt').fill(q);
      await page.getByTestId('send').click();
      const error = page.getByTestId('error');
      await error.waitFor({ state: 'visible' });
      assert.equal(await error.textContent(), refused.json.message);
      // The refused message went back to the composer, not into the conversation.
      assert.equal(await page.getByTestId('prompt').inputValue(), q);
      assert.equal(await page.getByTestId('assistant-message').count(), 0);
      await page.getByTestId('remove-image').click();

      const ok = await send(q, [STAR_HEART]);
      assert.equal(await error.isHidden(), true);
      const turn: Message = { role: 'user', content: [imagePart(STAR_HEART), textPart(q)] };
      assert.deepEqual(ok.body.messages, [turn]);
      assert.equal(squash(ok.text), squash(await apiAnswer(iris.baseUrl, [turn])));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('markup in an answer is shown as text and never runs', SKIP, async () => {
    const pieces = ['Look: <img src=x onerror="window.__pwned = 1">', ' and <scr', 'ipt>window.__pwned = 2</script>', '\n\n**bold** and <b>not bold</b>'];
    const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: MODEL, choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
    const sse =
      chunk({ role: 'assistant', content: '' }) +
      pieces.map((p) => chunk({ content: p })).join('') +
      `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: MODEL, choices: [], usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9, prompt_tokens_details: { cached_tokens: 3 } } })}\n\n` +
      'data: [DONE]\n\n';
    await page.route('**/v1/chat/completions', (route) => route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: sse }));
    const paths: string[] = [];
    page.on('request', (r) => paths.push(new URL(r.url()).pathname));

    const { text, stats } = await send('Say something dangerous.');
    await page.waitForTimeout(200);
    assert.ok(text.includes('Look: <img src=x onerror="window.__pwned = 1"> and <script>window.__pwned = 2</script>'), text);
    assert.ok(text.includes('bold and <b>not bold</b>'), text);
    assert.match(stats, /3 cached tokens/);
    const found = await page.evaluate(() => ({
      imgs: document.querySelectorAll('img:not(header img)').length,
      scripts: [...document.scripts].map((s: { src: string }) => s.src.replace(location.origin, '')),
      tags: [...document.querySelectorAll('[data-testid="assistant-message"] *')].map((e: { tagName: string }) => e.tagName.toLowerCase()),
      pwned: (window.__pwned as number | undefined) ?? null,
    }));
    assert.equal(found.imgs, 0);
    assert.deepEqual(found.scripts, ['/playground/app.js']);
    assert.deepEqual(found.tags, ['p', 'p', 'strong']);
    assert.equal(found.pwned, null);
    assert.ok(!paths.includes('/x'), 'the injected image was never fetched');
  });
});

describe('playground in Chromium, with --api-key', () => {
  const KEY = 'open-sesame';
  let iris: IrisServer;
  before(async () => {
    if (skipReason) return;
    [iris, browser] = await Promise.all([startIris(['--api-key', KEY], { modelPath: null }), launchBrowser()]);
  });
  after(async () => {
    if (skipReason) return;
    await Promise.all([browser?.close(), iris?.stop()]);
  });

  test('asks for the key, keeps it for the tab session, and chats with it', SKIP, async () => {
    await openPage(iris.baseUrl);
    try {
      watch.allowStatus(401);
      const keyInput = page.getByTestId('api-key');
      await keyInput.waitFor({ state: 'visible' });
      assert.equal(await page.getByTestId('send').isDisabled(), true);

      await keyInput.fill('wrong');
      await page.getByTestId('api-key-submit').click();
      const expected = await getJson(iris.baseUrl, '/v1/models', { authorization: 'Bearer wrong' });
      assert.equal(expected.status, 401);
      await page.getByTestId('error').filter({ hasText: expected.json.message }).waitFor();
      assert.equal(await keyInput.isVisible(), true);

      await keyInput.fill(KEY);
      await page.getByTestId('api-key-submit').click();
      await page.getByTestId('model-name').filter({ hasText: MODEL }).waitFor();
      assert.equal(await keyInput.isHidden(), true);
      assert.equal(await page.getByTestId('error').isHidden(), true);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('iris.apiKey')), KEY);
      assert.equal(await page.evaluate(() => localStorage.length), 0, 'the key is not kept beyond the session');

      // A reload in the same tab keeps the key.
      await page.reload();
      await page.getByTestId('model-name').filter({ hasText: MODEL }).waitFor();
      assert.equal(await keyInput.isHidden(), true);

      await greedy();
      const q = 'What is in this image?';
      const sent = await send(q, [STAR_HEART]);
      assert.equal(await sent.request.headerValue('authorization'), `Bearer ${KEY}`);
      const turn: Message = { role: 'user', content: [imagePart(STAR_HEART), textPart(q)] };
      assert.equal(squash(sent.text), squash(await apiAnswer(iris.baseUrl, [turn], { authorization: `Bearer ${KEY}` })));
    } finally {
      const problems = watch.problems();
      await page.close();
      assert.deepEqual(problems, []);
    }
  });
});
