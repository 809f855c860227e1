import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createServer, IncomingMessage, request as httpRequest, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { fixturePath, projectRoot } from './paths.js';

/** The tiny golden Qwen2.5-VL checkpoint (random weights: compare ids and texts between calls, not meanings). */
export const MODEL_PATH = fixturePath('golden/qwen2_5_vl/model');

// ---------------------------------------------------------------------------------------------
// `iris serve` as a child process
// ---------------------------------------------------------------------------------------------

export interface IrisServer {
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  port: number;
  child: ChildProcess;
  /** Everything the server printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits (code, signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL if it is still alive after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Starts `node dist/src/cli/main.js serve --model-path ... --port 0 --log-level warn [extra]`,
 * waits for `Iris is ready at http://HOST:PORT ...` on stdout and parses the port.
 */
/** Starts `iris serve` on a free port; `modelPath: null` serves the built-in model (no --model-path). */
export async function startIris(extraArgs: string[] = [], opts: { modelPath?: string | null; readyTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<IrisServer> {
  const model = opts.modelPath === null ? [] : ['--model-path', opts.modelPath ?? MODEL_PATH];
  const args = [`${projectRoot}/dist/src/cli/main.js`, 'serve', ...model, '--port', '0', '--log-level', 'warn', ...extraArgs];
  const child = spawn(process.execPath, args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  const ready = await new Promise<{ baseUrl: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iris serve did not get ready within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${err}`));
    }, timeoutMs);
    const onData = () => {
      const m = /Iris is ready at (http:\/\/(\S+?):(\d+))\s/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve({ baseUrl: m[1]!, port: Number(m[3]) });
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`iris serve exited (code ${code}, signal ${signal}) before it was ready\nargs: ${args.join(' ')}\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  let stopping: Promise<void> | null = null;
  return {
    ...ready,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** POST a JSON body (or a raw string) and read the answer, as curl would. */
export async function postJson(baseUrl: string, path: string, body: unknown, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<JsonResponse> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: init.signal,
  });
  return readJson(res);
}

export async function getJson(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return readJson(await fetch(`${baseUrl}${path}`, { headers }));
}

async function readJson(res: Response): Promise<JsonResponse> {
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * Asserts an OpenAI/SGLang error: the status, the body {object:"error", message, type, param, code},
 * and that the message contains every given fragment (string: case-insensitive substring, or RegExp).
 */
export function assertError(r: JsonResponse, status: number, fragments: Array<string | RegExp> = [], what = ''): string {
  const where = `${what ? `${what}: ` : ''}HTTP ${r.status} ${r.text.slice(0, 600)}`;
  assert.equal(r.status, status, where);
  const b = r.json;
  assert.ok(b && typeof b === 'object', `error body is not JSON: ${where}`);
  assert.equal(b.object, 'error', where);
  assert.equal(typeof b.message, 'string', where);
  assert.ok(b.message.length > 0, where);
  assert.equal(typeof b.type, 'string', where);
  assert.ok('param' in b, `error body has no "param": ${where}`);
  assert.ok(b.param === null || typeof b.param === 'string', where);
  assert.equal(b.code, status, where);
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(b.message.toLowerCase().includes(f.toLowerCase()), `message should mention ${JSON.stringify(f)}: ${where}`);
    else assert.match(b.message, f, where);
  }
  return b.message as string;
}

/** One server-sent event stream, split into its `data:` payloads (the final `[DONE]` kept as the string). */
export async function readSse(res: Response, opts: { onEvent?: (data: string, index: number) => boolean | void } = {}): Promise<string[]> {
  const events: string[] = [];
  const decoder = new TextDecoder();
  let buf = '';
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let sep: number;
    while ((sep = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) continue;
      events.push(data);
      if (opts.onEvent?.(data, events.length - 1) === false) {
        await reader.cancel().catch(() => undefined);
        return events;
      }
    }
  }
  if (buf.trim()) events.push(buf.trim().replace(/^data: ?/, ''));
  return events;
}

/** POSTs a streaming request and returns the Response (not yet read). */
export function postStream(baseUrl: string, path: string, body: unknown, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
  return fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: JSON.stringify(body),
    signal: init.signal,
  });
}

/** Polls `check` until it returns a truthy value or the time runs out; returns the last value. */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs: number, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await check();
  while (!v && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, intervalMs));
    v = await check();
  }
  return v;
}

/** A fresh TCP connection (no keep-alive pool): resolves to the HTTP status, or rejects with the socket error (e.g. ECONNREFUSED). */
export function freshGet(url: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A localhost port that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The golden chat case (one PNG data URI) with its expected usage, ids and top-5 logprobs. */
export async function goldenChatCase(): Promise<{
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  messages: any[];
  renderedPrompt: string;
  imageDataUri: string;
  expected: { prompt_tokens: number; completion_text: string; completion_token_ids: number[]; completion_tokens: number; finish_reason: string; top_logprobs: Array<Array<{ id: number; logprob: number }>> };
}> {
  const { readFileSync } = await import('node:fs');
  const cases = JSON.parse(readFileSync(fixturePath('golden/qwen2_5_vl/chat_cases.json'), 'utf8'));
  const c = cases.cases[0];
  const imagePart = c.messages[0].content.find((p: { type: string }) => p.type === 'image_url');
  return { messages: c.messages, renderedPrompt: c.rendered_prompt, imageDataUri: imagePart.image_url.url, expected: c.expected };
}

// ---------------------------------------------------------------------------------------------
// A local image server (127.0.0.1 only)
// ---------------------------------------------------------------------------------------------

export interface ImageServer {
  baseUrl: string;
  port: number;
  /** `${baseUrl}${path}` */
  url(path: string): string;
  png: Buffer;
  /** A second, different PNG (other size and colours). */
  png2: Buffer;
  jpeg: Buffer;
  /** Requests seen per path (query string excluded). */
  hits(path: string): number;
  totalHits(): number;
  close(): Promise<void>;
}

/** A deterministic gradient image, as raw RGB. */
function gradient(width: number, height: number, seed: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      raw[o] = (x * 255) / width + seed * 37;
      raw[o + 1] = (y * 255) / height + seed * 91;
      raw[o + 2] = ((x + y) * 7 + seed * 53) & 255;
    }
  return raw;
}

export async function makeImages(): Promise<{ png: Buffer; png2: Buffer; jpeg: Buffer }> {
  const png = await sharp(gradient(64, 48, 0), { raw: { width: 64, height: 48, channels: 3 } }).png().toBuffer();
  const png2 = await sharp(gradient(40, 72, 1), { raw: { width: 40, height: 72, channels: 3 } }).png().toBuffer();
  const jpeg = await sharp(gradient(64, 48, 2), { raw: { width: 64, height: 48, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  return { png, png2, jpeg };
}

/**
 * Routes:
 * - /image.png, /image2.png, /image.jpg          the images
 * - /redirect/N                                 302 -> /redirect/N-1 ... -> /image.png
 * - /loop                                       302 -> /loop forever
 * - /slow?ms=M                                  waits M ms (default 5000) before sending headers, then the PNG
 * - /flaky/KEY                                  500, 500, then the PNG (hits counted per KEY)
 * - /missing.png                                404
 * - /page.html                                  200 text/html
 * - /huge.png                                   2 MiB with an honest content-length
 * - /huge-chunked.png                           2 MiB chunked, no content-length
 * - /lie-small.png                              says content-length 1000, sends 2 MiB
 * - /lie-long.png                               says content-length 100000, sends the PNG and closes
 */
export async function startImageServer(): Promise<ImageServer> {
  const { png, png2, jpeg } = await makeImages();
  const huge = Buffer.concat([png, Buffer.alloc(2 * 1024 * 1024 - png.length, 7)]);
  const counts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const sendImage = (res: ServerResponse, body: Buffer, type = 'image/png') => {
    res.writeHead(200, { 'content-type': type, 'content-length': String(body.length) });
    res.end(body);
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const path = u.pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    let m: RegExpExecArray | null;
    if (path === '/image.png') return sendImage(res, png);
    if (path === '/image2.png') return sendImage(res, png2);
    if (path === '/image.jpg') return sendImage(res, jpeg, 'image/jpeg');
    if ((m = /^\/redirect\/(\d+)$/.exec(path))) {
      const n = Number(m[1]);
      res.writeHead(302, { location: n <= 1 ? '/image.png' : `/redirect/${n - 1}` });
      return res.end();
    }
    if (path === '/loop') {
      res.writeHead(302, { location: '/loop' });
      return res.end();
    }
    if (path === '/slow') {
      const ms = Number(u.searchParams.get('ms') ?? 5000);
      const t = setTimeout(() => {
        timers.delete(t);
        if (!res.destroyed) sendImage(res, png);
      }, ms);
      timers.add(t);
      res.on('close', () => {
        clearTimeout(t);
        timers.delete(t);
      });
      return;
    }
    if (path.startsWith('/flaky/')) {
      if (counts.get(path)! <= 2) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        return res.end('try again');
      }
      return sendImage(res, png);
    }
    if (path === '/page.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end('<!doctype html><html><head><title>Not an image</title></head><body><p>Hello, this is a web page and not a picture.</p></body></html>');
    }
    if (path === '/huge.png') return sendImage(res, huge);
    if (path === '/huge-chunked.png') {
      res.writeHead(200, { 'content-type': 'image/png' });
      let sent = 0;
      const chunk = huge.subarray(0, 64 * 1024);
      const more = () => {
        while (sent < huge.length && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        if (!res.destroyed) res.end();
      };
      res.on('error', () => undefined);
      return more();
    }
    if (path === '/lie-small.png') {
      // Raw socket: the header promises 1000 bytes, 2 MiB follow.
      const sock = req.socket;
      sock.on('error', () => undefined);
      sock.write(`HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n`);
      sock.write(huge);
      sock.end();
      return;
    }
    if (path === '/lie-long.png') {
      // The header promises 100000 bytes; the PNG (much shorter) follows, then the connection closes.
      const sock = req.socket;
      sock.on('error', () => undefined);
      sock.write(`HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 100000\r\n\r\n`);
      sock.write(png);
      sock.end();
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  };
  const server: Server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    port,
    url: (p: string) => `${baseUrl}${p}`,
    png,
    png2,
    jpeg,
    hits: (p: string) => counts.get(p) ?? 0,
    totalHits: () => [...counts.values()].reduce((a, b) => a + b, 0),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A chat request with one user turn made of `parts` (strings become text parts, {url} image parts). */
export function chatBody(parts: Array<string | { url: string; detail?: string }>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'Qwen/Qwen2.5-VL-7B-Instruct',
    messages: [
      {
        role: 'user',
        content: parts.map((p) => (typeof p === 'string' ? { type: 'text', text: p } : { type: 'image_url', image_url: p })),
      },
    ],
    max_tokens: 8,
    temperature: 0,
    ...extra,
  };
}

export function dataUri(bytes: Buffer, mime = 'image/png'): string {
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

/** Reads an SSE body until `n` events have arrived (or it ends); returns the text read. */
export async function readUntilEvents(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<string> {
  const decoder = new TextDecoder();
  let buf = '';
  while ((buf.match(/\n\n/g) ?? []).length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
  }
  return buf;
}
