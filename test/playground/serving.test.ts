import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import Fastify from 'fastify';
import { PLAYGROUND_CSP, registerPlayground } from '../../src/server/playground.js';
import { IrisServer, startIris } from '../helpers/server.js';

/** GET with the path sent exactly as given (fetch would resolve dot segments first). */
function rawGet(baseUrl: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('playground serving, with --api-key', () => {
  let iris: IrisServer;
  before(async () => {
    iris = await startIris(['--api-key', 'sesame'], { modelPath: null });
  });
  after(() => iris?.stop());

  test('the page answers without the key, with a strict CSP and no inline script or style', async () => {
    const res = await fetch(`${iris.baseUrl}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(res.headers.get('content-security-policy'), PLAYGROUND_CSP);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const csp = PLAYGROUND_CSP.split('; ');
    for (const d of ["default-src 'self'", "script-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'"]) assert.ok(csp.includes(d), d);
    assert.ok(!PLAYGROUND_CSP.includes('unsafe'), 'no unsafe-inline or unsafe-eval');
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.ok(scripts.length > 0);
    for (const [, attrs, body] of scripts) {
      assert.match(attrs!, /\bsrc="\/playground\//);
      assert.equal(body!.trim(), '', 'no inline script');
    }
    assert.doesNotMatch(html, /\son\w+=/i, 'no inline event handlers');
    assert.doesNotMatch(html, /\sstyle=|<style/i, 'no inline styles');
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing from another origin');
  });

  test('every file the page loads, and every module those import, is served with its type', async () => {
    const html = await (await fetch(`${iris.baseUrl}/`)).text();
    const queue = [...html.matchAll(/(?:src|href)="(\/playground\/[^"]+)"/g)].map((m) => m[1]!);
    const seen = new Set<string>();
    const types: Record<string, RegExp> = { js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ };
    while (queue.length) {
      const path = queue.shift()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const res = await fetch(`${iris.baseUrl}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', types[path.split('.').pop()!]!, path);
      assert.equal(res.headers.get('content-security-policy'), PLAYGROUND_CSP, path);
      const text = await res.text();
      if (path.endsWith('.js')) {
        for (const m of text.matchAll(/^import [^'"]*['"](\.\/[^'"]+)['"]/gm)) queue.push(new URL(m[1]!, `http://x${path}`).pathname);
        assert.doesNotMatch(text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/, `${path} builds DOM only from nodes`);
      }
    }
    for (const m of ['/playground/app.js', '/playground/markdown.js', '/playground/sse.js', '/playground/style.css']) assert.ok(seen.has(m), m);
  });

  test('the API still needs the key, and playground paths do not lead around it', async () => {
    assert.equal((await fetch(`${iris.baseUrl}/v1/models`)).status, 401);
    for (const path of ['/playground/../v1/models', '/playground/%2e%2e/v1/models', '/playground/..%2Fv1%2Fmodels', '/playground/x/../../v1/models']) {
      const res = await rawGet(iris.baseUrl, path);
      assert.ok([401, 404].includes(res.status), `${path}: ${res.status}`);
      assert.doesNotMatch(res.body, /iris-shapes-v1/, path);
    }
  });

  test('files that are not part of the page are not served', async () => {
    for (const path of ['/playground/missing.js', '/playground/markdown.d.ts', '/playground/tsconfig.json', '/playground/', '/playground']) {
      const res = await rawGet(iris.baseUrl, path);
      assert.ok([401, 404].includes(res.status), `${path}: ${res.status}`);
    }
  });
});

describe('playground serving, --disable-playground', () => {
  let iris: IrisServer;
  before(async () => {
    iris = await startIris(['--disable-playground'], { modelPath: null });
  });
  after(() => iris?.stop());

  test('/ and the assets are 404, the API works', async () => {
    for (const path of ['/', '/playground/app.js']) {
      const res = await fetch(`${iris.baseUrl}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { type: string }).type, 'NotFoundError');
    }
    assert.equal((await fetch(`${iris.baseUrl}/v1/models`)).status, 200);
  });
});

test('a missing playground folder is a clear startup error', () => {
  const app = Fastify();
  assert.throws(() => registerPlayground(app, '/nonexistent/playground'), /playground files are missing \(\/nonexistent\/playground\).*--disable-playground/);
});
