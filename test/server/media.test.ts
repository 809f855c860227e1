import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ImageServer,
  IrisServer,
  assertError,
  chatBody,
  closedPort,
  dataUri,
  postJson,
  startImageServer,
  startIris,
} from '../helpers/server.js';

/**
 * Bringing images in: URLs from a local image server (redirects, retries, timeouts, size
 * caps, lies), data URIs, local files under --allowed-local-media-path, and
 * --block-private-media-hosts. Every failure is a 400 naming the image's position, the
 * (shortened) source and the cause; the server keeps serving.
 */

const FETCH_TIMEOUT_S = 0.5;
const MAX_MB = 1;
const MAX_BYTES = MAX_MB * 1024 * 1024;
const MAX_IMAGES = 4;
const MAX_PIXELS = 1_000_000;

let images: ImageServer;
/** --media-fetch-timeout 0.5 --media-url-max-file-size-mb 1 --max-images-per-request 4 --max-image-pixels 1000000 */
let iris: IrisServer;
/** --allowed-local-media-path <tmp>/allowed --block-private-media-hosts --disable-radix-cache */
let restricted: IrisServer;
let tmp: string;
let allowed: string;
let outside: string;

before(async () => {
  images = await startImageServer();
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'iris-media-')));
  allowed = join(tmp, 'allowed');
  outside = join(tmp, 'outside');
  mkdirSync(join(allowed, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(allowed, 'inside.png'), images.png);
  writeFileSync(join(allowed, 'sub', 'photo.jpg'), images.jpeg);
  writeFileSync(join(allowed, 'notes.txt'), 'just some text, not a picture');
  writeFileSync(join(outside, 'secret.png'), images.png2);
  symlinkSync(join(outside, 'secret.png'), join(allowed, 'link.png'));
  symlinkSync(outside, join(allowed, 'dirlink'));
  [iris, restricted] = await Promise.all([
    startIris([
      '--media-fetch-timeout', String(FETCH_TIMEOUT_S),
      '--media-url-max-file-size-mb', String(MAX_MB),
      '--max-images-per-request', String(MAX_IMAGES),
      '--max-image-pixels', String(MAX_PIXELS),
    ]),
    startIris(['--allowed-local-media-path', allowed, '--block-private-media-hosts', '--disable-radix-cache']),
  ]);
});

after(async () => {
  await Promise.all([iris?.stop(), restricted?.stop(), images?.close()]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const chatWith = (server: IrisServer, ...urls: string[]) =>
  postJson(server.baseUrl, '/v1/chat/completions', chatBody(['Describe:', ...urls.map((url) => ({ url }))], { max_tokens: 2 }));

async function assertServing(server: IrisServer): Promise<void> {
  const r = await postJson(server.baseUrl, '/v1/chat/completions', chatBody(['Describe:', { url: dataUri(images.png) }], { max_tokens: 2 }));
  assert.equal(r.status, 200, `the server no longer serves: ${r.text}`);
}

/** An image failure: 400, param "image", message names the position, the source and the cause. */
function assertImageError(r: Awaited<ReturnType<typeof postJson>>, position: number, source: string, cause: Array<string | RegExp>, what = ''): string {
  const msg = assertError(r, 400, [`image ${position}`, source, ...cause], what);
  assert.equal(r.json.type, 'BadRequestError');
  assert.equal(r.json.param, 'image');
  return msg;
}

describe('image URLs that work', () => {
  test('PNG and JPEG by URL; a 3-hop redirect chain reaches the image', async () => {
    for (const p of ['/image.png', '/image.jpg', '/redirect/3']) {
      const r = await chatWith(iris, images.url(p));
      assert.equal(r.status, 200, `${p}: ${r.text}`);
    }
    assert.equal(images.hits('/redirect/3'), 1);
    assert.equal(images.hits('/redirect/1'), 1);
  });

  test('retries: 500, 500, then the image -> 200, and the image server saw 3 requests', async () => {
    const r = await chatWith(iris, images.url('/flaky/retry-a'));
    assert.equal(r.status, 200, r.text);
    assert.equal(images.hits('/flaky/retry-a'), 3);
  });

  test('the same picture by URL and by data URI gives the same answer', async () => {
    const a = await chatWith(iris, images.url('/image.png'));
    const b = await chatWith(iris, dataUri(images.png));
    assert.equal(a.json.choices[0].message.content, b.json.choices[0].message.content);
    assert.equal(a.json.usage.prompt_tokens, b.json.usage.prompt_tokens);
  });
});

describe('image URL failures -> 400 naming image N, the URL and the cause', () => {
  test('unreachable host (a closed port on 127.0.0.1): connection refused, after retries', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/gone.png`;
    assertImageError(await chatWith(iris, url), 1, url, ['connection refused']);
  });

  test('HTTP 404: says 404, not retried', async () => {
    const url = images.url('/missing.png');
    assertImageError(await chatWith(iris, url), 1, url, ['404']);
    assert.equal(images.hits('/missing.png'), 1, '404 is not a transient error');
  });

  test('a slow host (headers after 5 s) times out after --media-fetch-timeout', async () => {
    const url = images.url('/slow?ms=5000');
    const t0 = Date.now();
    const r = await chatWith(iris, url);
    const ms = Date.now() - t0;
    assertImageError(r, 1, url, ['timed out', `${FETCH_TIMEOUT_S * 1000} ms`]);
    assert.ok(ms < 4500, `gave up after ${ms} ms, before the server's 5 s`);
  });

  test('not an image (an HTML page): names what it got', async () => {
    const url = images.url('/page.html');
    const msg = assertImageError(await chatWith(iris, url), 1, url, ['not a supported image']);
    assert.match(msg, /HTML/, 'says it got HTML');
  });

  test('too large (2 MiB, honest content-length) over --media-url-max-file-size-mb 1', async () => {
    const url = images.url('/huge.png');
    assertImageError(await chatWith(iris, url), 1, url, ['larger than', String(MAX_BYTES)]);
  });

  test('too large without content-length (chunked 2 MiB): stopped while reading', async () => {
    const url = images.url('/huge-chunked.png');
    assertImageError(await chatWith(iris, url), 1, url, ['larger than', String(MAX_BYTES)]);
  });

  test('content-length lies: promises 1000 bytes and sends 2 MiB; promises 100000 and sends less', async () => {
    const small = images.url('/lie-small.png');
    const r1 = await chatWith(iris, small);
    assertImageError(r1, 1, small, ['cannot decode']);
    const long = images.url('/lie-long.png');
    const r2 = await chatWith(iris, long);
    assertImageError(r2, 1, long, [/connection|closed|reset|terminated/i]);
    await assertServing(iris);
  });

  test('a redirect loop: more than 5 redirects', async () => {
    const url = images.url('/loop');
    assertImageError(await chatWith(iris, url), 1, url, ['more than 5 redirects']);
    assert.equal(images.hits('/loop'), 6, 'five redirects followed, the sixth refused');
  });

  test('the failing image is named by its position among several', async () => {
    const bad = images.url('/missing.png');
    const r = await chatWith(iris, images.url('/image.png'), dataUri(images.png2), bad);
    assertImageError(r, 3, bad, ['404']);
  });

  test('a long URL is shortened in the message', async () => {
    const url = images.url(`/missing-${'x'.repeat(200)}.png`);
    const msg = assertImageError(await chatWith(iris, url), 1, url.slice(0, 60), ['404']);
    assert.ok(!msg.includes(url), 'the full 200+ character URL is not echoed');
    assert.ok(msg.length < 300, msg);
  });

  test('/generate image_data errors have the same shape', async () => {
    const url = images.url('/missing.png');
    const r = await postJson(iris.baseUrl, '/generate', { text: 'hi', image_data: [dataUri(images.png), url], sampling_params: { max_new_tokens: 2 } });
    assertImageError(r, 2, url, ['404']);
  });

  test('a streaming request with a bad image gets HTTP 400, not a 200 stream with an error event', async () => {
    const url = images.url('/missing.png');
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['Describe:', { url }], { max_tokens: 2, stream: true }));
    assertImageError(r, 1, url, ['404']);
  });

  test(`more than --max-images-per-request ${MAX_IMAGES} images -> 400 naming the limit, nothing fetched`, async () => {
    const before = images.totalHits();
    const r = await chatWith(iris, ...Array.from({ length: MAX_IMAGES + 1 }, () => images.url('/image.png')));
    assertError(r, 400, [String(MAX_IMAGES + 1), `limit is ${MAX_IMAGES}`]);
    assert.equal(images.totalHits(), before, 'refused before downloading');
    const ok = await chatWith(iris, ...Array.from({ length: MAX_IMAGES }, () => dataUri(images.png)));
    assert.equal(ok.status, 200, ok.text);
  });

  test(`an image over --max-image-pixels ${MAX_PIXELS} -> 400 with its size, before decoding`, async () => {
    const { default: sharp } = await import('sharp');
    const big = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#3366cc' } }).png().toBuffer();
    assert.ok(big.length < 100_000, 'small file, many pixels');
    const r = await chatWith(iris, dataUri(big));
    assertImageError(r, 1, 'data:image/png;base64,', ['1200x1000', String(MAX_PIXELS)]);
  });

  test('after all of these, the server still serves', async () => {
    await assertServing(iris);
  });
});

describe('data URIs and other sources', () => {
  test('malformed data URIs: no comma, invalid base64, not an image; shortened in the message', async () => {
    const noComma = 'data:image/png;base64';
    assertImageError(await chatWith(iris, noComma), 1, 'data:image/png;base64', ['no comma']);
    const badB64 = 'data:image/png;base64,@@@not*base64@@@';
    assertImageError(await chatWith(iris, badB64), 1, 'data:image/png;base64,', ['base64']);
    const text = dataUri(Buffer.from('hello, I am text and not a picture at all'.repeat(10)));
    const msg = assertImageError(await chatWith(iris, text), 1, 'data:image/png;base64,', []);
    assert.ok(!msg.includes(text.slice(30, 200)), 'the payload is not echoed');
  });

  test('a data URI over the size limit -> 400 larger than the limit', async () => {
    const big = dataUri(Buffer.alloc(MAX_BYTES + 4096, 1));
    // The body limit (64 MB default) lets it through to the image check.
    const r = await chatWith(iris, big);
    assertImageError(r, 1, 'data:image/png;base64,', ['larger than']);
  });

  test('unsupported URL schemes', async () => {
    assertImageError(await chatWith(iris, 'ftp://127.0.0.1/x.png'), 1, 'ftp://127.0.0.1/x.png', ['scheme']);
    assertImageError(await chatWith(iris, 'gopher://127.0.0.1/x'), 1, 'gopher://', ['scheme']);
  });

  test('local paths and file:// URLs are refused without --allowed-local-media-path', async () => {
    const p = join(allowed, 'inside.png');
    assertImageError(await chatWith(iris, p), 1, p, ['--allowed-local-media-path']);
    const u = pathToFileURL(p).href;
    assertImageError(await chatWith(iris, u), 1, u, ['--allowed-local-media-path']);
    assertImageError(await chatWith(iris, '/etc/passwd'), 1, '/etc/passwd', ['not allowed']);
    assertImageError(await chatWith(iris, 'file:///etc/passwd'), 1, 'file:///etc/passwd', ['not allowed']);
  });
});

describe('--allowed-local-media-path', () => {
  test('a file inside works by path and by file:// URL, and gives the same answer as the bytes', async () => {
    const p = join(allowed, 'inside.png');
    const byPath = await chatWith(restricted, p);
    assert.equal(byPath.status, 200, byPath.text);
    const byUrl = await chatWith(restricted, pathToFileURL(p).href);
    assert.equal(byUrl.status, 200, byUrl.text);
    const byData = await chatWith(restricted, dataUri(images.png));
    assert.equal(byPath.json.choices[0].message.content, byData.json.choices[0].message.content);
    assert.equal(byUrl.json.choices[0].message.content, byData.json.choices[0].message.content);
    const sub = await chatWith(restricted, join(allowed, 'sub', 'photo.jpg'));
    assert.equal(sub.status, 200, sub.text);
    // A `..` that stays inside is fine.
    const back = await chatWith(restricted, join(allowed, 'sub', '..', 'inside.png'));
    assert.equal(back.status, 200, back.text);
  });

  test('a path outside the folder is refused', async () => {
    const p = join(outside, 'secret.png');
    assertImageError(await chatWith(restricted, p), 1, p, ['outside the allowed']);
    assertImageError(await chatWith(restricted, pathToFileURL(p).href), 1, 'file://', ['outside the allowed']);
    assertImageError(await chatWith(restricted, '/etc/hostname'), 1, '/etc/hostname', ['outside the allowed']);
  });

  test('`..` escapes are refused', async () => {
    const p = `${allowed}/../outside/secret.png`;
    assertImageError(await chatWith(restricted, p), 1, p, ['outside the allowed']);
    const deep = `${allowed}/sub/../../outside/secret.png`;
    assertImageError(await chatWith(restricted, deep), 1, deep, ['outside the allowed']);
    const u = `file://${allowed}/../outside/secret.png`;
    assertImageError(await chatWith(restricted, u), 1, 'file://', ['outside the allowed']);
  });

  test('symlinks pointing outside (file and folder) are refused', async () => {
    const link = join(allowed, 'link.png');
    assertImageError(await chatWith(restricted, link), 1, link, ['outside the allowed']);
    const viaDir = join(allowed, 'dirlink', 'secret.png');
    assertImageError(await chatWith(restricted, viaDir), 1, viaDir, ['outside the allowed']);
  });

  test('inside but unusable: a missing file, a folder, a text file', async () => {
    const missing = join(allowed, 'nope.png');
    assertImageError(await chatWith(restricted, missing), 1, missing, ['no such file']);
    const dir = pathToFileURL(join(allowed, 'sub')).href;
    assertImageError(await chatWith(restricted, dir), 1, dir, ['not a regular file']);
    const txt = pathToFileURL(join(allowed, 'notes.txt')).href;
    assertImageError(await chatWith(restricted, txt), 1, txt, []);
  });

  test('a missing file outside the folder is refused like an existing one (no file-existence oracle)', async () => {
    const existing = join(outside, 'secret.png');
    const missing = join(outside, 'does-not-exist.png');
    const a = await chatWith(restricted, existing);
    const b = await chatWith(restricted, missing);
    assertImageError(a, 1, existing, ['outside the allowed']);
    // Answering "no such file" here but "outside the allowed folder" for existing files lets
    // a client probe which files exist anywhere on the server.
    assertImageError(b, 1, missing, ['outside the allowed'], 'missing file outside the folder');
    assertImageError(await chatWith(restricted, '/etc/no-such-file-here.png'), 1, '/etc/no-such-file-here.png', ['outside the allowed'], '/etc probe');
  });

  test('data URIs work next to local files; the server keeps serving', async () => {
    const r = await chatWith(restricted, dataUri(images.png2), join(allowed, 'inside.png'));
    assert.equal(r.status, 200, r.text);
    await assertServing(restricted);
  });
});

describe('prefix and vision caches are keyed by image content', () => {
  test('two different same-size images after one another and together: each answer equals a server without prefix cache', async () => {
    const { default: sharp } = await import('sharp');
    // Same size as images.png (64x48), so the placeholder tokens are identical; different pixels.
    const other = await sharp(images.png).negate().png().toBuffer();
    const ask = (server: IrisServer, img: Buffer) =>
      postJson(server.baseUrl, '/v1/chat/completions', chatBody(['What is in this picture?', { url: dataUri(img) }], { max_tokens: 12, logprobs: true, top_logprobs: 3 }));
    const summary = (r: Awaited<ReturnType<typeof postJson>>) => {
      assert.equal(r.status, 200, r.text);
      return r.json.choices[0].logprobs.content.map((c: { token: string; top_logprobs: Array<{ logprob: number }> }) => [c.token, ...c.top_logprobs.map((t) => t.logprob.toFixed(3))].join(' '));
    };
    // Reference answers from the server started with --disable-radix-cache.
    const coldB = summary(await ask(restricted, other));
    const coldA = summary(await ask(restricted, images.png));
    assert.notDeepEqual(coldA, coldB, 'the two pictures give different answers');
    // On the main server (prefix cache on, A seen many times already): A, then B
    // (B's prompt shares all text tokens and the placeholder ids with A's).
    const a1 = summary(await ask(iris, images.png));
    const b1 = await ask(iris, other);
    assert.deepEqual(summary(b1), coldB, 'B after A answers like B alone');
    assert.deepEqual(a1, coldA);
    // Together, several times.
    const both = await Promise.all([ask(iris, other), ask(iris, images.png), ask(iris, other), ask(iris, images.png)]);
    assert.deepEqual(both.map(summary), [coldB, coldA, coldB, coldA]);
    // The repeated request reused the cached prefix.
    const again = await ask(iris, other);
    assert.ok(again.json.usage.prompt_tokens_details.cached_tokens > 0, `cached_tokens ${again.json.usage.prompt_tokens_details.cached_tokens}`);
    assert.deepEqual(summary(again), coldB);
  });
});

describe('--block-private-media-hosts', () => {
  test('loopback in every spelling is refused before any request is sent', async () => {
    const before = images.totalHits();
    const p = images.port;
    const urls = [
      images.url('/image.png'),
      `http://localhost:${p}/image.png`,
      `http://[::ffff:127.0.0.1]:${p}/image.png`,
      `http://0x7f000001:${p}/image.png`,
      `http://2130706433:${p}/image.png`,
      `http://127.1:${p}/image.png`,
    ];
    for (const url of urls) {
      const r = await chatWith(restricted, url);
      assertImageError(r, 1, url.slice(0, 30), ['private'], url);
    }
    assert.equal(images.totalHits(), before, 'the image server saw no request');
  });

  test('a redirect chain (towards 127.0.0.1) is refused', async () => {
    const url = images.url('/redirect/4');
    const before = images.totalHits();
    assertImageError(await chatWith(restricted, url), 1, url, ['private']);
    assert.equal(images.totalHits(), before, 'not even the first hop was requested');
  });

  test('private addresses are refused at once, not retried', async () => {
    const r = await chatWith(restricted, images.url('/image.png'));
    const msg = assertImageError(r, 1, images.url('/image.png'), ['private', '127.0.0.1']);
    assert.doesNotMatch(msg, /attempts/, 'no retries for a refused address');
  });

  test('data URIs still work on the guarded server', async () => {
    await assertServing(restricted);
  });
});
