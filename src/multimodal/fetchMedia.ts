import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageError } from '../errors.js';

/** Limits for bringing image bytes in from URLs, data URIs and local files. */
export interface MediaLimits {
  /** Local paths and file:// URLs are allowed only under this folder; null: refused; 'any': trusted caller. */
  allowedLocalMediaPath: string | null | 'any';
  /** Whole-download timeout per attempt. */
  fetchTimeoutMs: number;
  retries: number;
  maxBytes: number;
  maxRedirects: number;
}

export const DEFAULT_MEDIA_LIMITS: MediaLimits = {
  allowedLocalMediaPath: null,
  fetchTimeoutMs: 10_000,
  retries: 2,
  maxBytes: 32 * 1024 * 1024,
  maxRedirects: 5,
};

/** A short, log-safe rendering of an image source for error messages. */
export function describeSource(src: string | Uint8Array): string {
  if (typeof src !== 'string') return `<${src.length} bytes>`;
  if (src.startsWith('data:')) return `${src.slice(0, Math.min(src.indexOf(',') + 1 || 30, 40))}...`;
  return src.length > 80 ? `${src.slice(0, 77)}...` : src;
}

function fail(index: number, src: string | Uint8Array, cause: string): never {
  throw new ImageError(`image ${index + 1} (${describeSource(src)}): ${cause}`, 'image');
}

const TRANSIENT = new Set([408, 429, 500, 502, 503, 504]);

async function readCapped(res: Response, maxBytes: number, onTooLarge: () => never): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) onTooLarge();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      onTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

async function fetchHttp(url: string, index: number, limits: MediaLimits): Promise<Uint8Array> {
  let lastCause = '';
  for (let attempt = 0; attempt <= limits.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (attempt - 1), 2000)));
    const signal = AbortSignal.timeout(limits.fetchTimeoutMs);
    try {
      let current = url;
      for (let hop = 0; ; hop++) {
        const res = await fetch(current, { redirect: 'manual', signal, headers: { 'user-agent': 'iris' } });
        if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
          await res.body?.cancel().catch(() => undefined);
          if (hop >= limits.maxRedirects) fail(index, url, `more than ${limits.maxRedirects} redirects`);
          current = new URL(res.headers.get('location')!, current).toString();
          continue;
        }
        if (!res.ok) {
          await res.body?.cancel().catch(() => undefined);
          lastCause = `the server answered HTTP ${res.status}`;
          if (TRANSIENT.has(res.status)) break;
          fail(index, url, lastCause);
        }
        return await readCapped(res, limits.maxBytes, () => fail(index, url, `larger than the ${limits.maxBytes} byte limit`));
      }
    } catch (e) {
      if (e instanceof ImageError) throw e;
      const err = e as Error & { cause?: { code?: string; message?: string } };
      lastCause =
        err.name === 'TimeoutError' || err.name === 'AbortError'
          ? `timed out after ${limits.fetchTimeoutMs} ms`
          : `could not be fetched (${err.cause?.code ?? err.cause?.message ?? err.message})`;
    }
  }
  fail(index, url, `${lastCause} (after ${limits.retries + 1} attempts)`);
}

async function readLocal(path: string, index: number, src: string, limits: MediaLimits): Promise<Uint8Array> {
  if (limits.allowedLocalMediaPath === null) fail(index, src, 'local files are not allowed (see --allowed-local-media-path)');
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    fail(index, src, 'no such file');
  }
  if (limits.allowedLocalMediaPath !== 'any') {
    // Compare real paths, so neither `..` nor symlinks lead outside the folder.
    const root = await realpath(limits.allowedLocalMediaPath).catch(() => fail(index, src, 'the allowed media folder does not exist'));
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) fail(index, src, 'path is outside the allowed media folder');
  }
  const st = await stat(real);
  if (!st.isFile()) fail(index, src, 'not a regular file');
  if (st.size > limits.maxBytes) fail(index, src, `larger than the ${limits.maxBytes} byte limit`);
  return readFile(real);
}

function decodeDataUri(uri: string, index: number, limits: MediaLimits): Uint8Array {
  const comma = uri.indexOf(',');
  if (comma < 0) fail(index, uri, 'malformed data URI (no comma)');
  const meta = uri.slice(5, comma);
  const payload = uri.slice(comma + 1);
  if (!meta.endsWith(';base64')) return Buffer.from(decodeURIComponent(payload), 'latin1');
  if (payload.length * 0.75 > limits.maxBytes) fail(index, uri, `larger than the ${limits.maxBytes} byte limit`);
  if (!/^[A-Za-z0-9+/=_\-\s]*$/.test(payload)) fail(index, uri, 'invalid base64 in data URI');
  return Buffer.from(payload, 'base64');
}

/**
 * Brings one image's bytes in: http(s) URL (timeouts, retries on transient
 * failures, redirect and size caps), data: URI, file:// URL or local path
 * (only under the allowed folder), bare base64, or bytes given directly.
 */
export async function loadMediaBytes(src: string | Uint8Array, index: number, limits: MediaLimits): Promise<Uint8Array> {
  if (typeof src !== 'string') {
    if (src.length > limits.maxBytes) fail(index, src, `larger than the ${limits.maxBytes} byte limit`);
    return src;
  }
  const s = src.trim();
  if (s.startsWith('http://') || s.startsWith('https://')) return fetchHttp(s, index, limits);
  if (s.startsWith('data:')) return decodeDataUri(s, index, limits);
  if (s.startsWith('file://')) {
    let p: string;
    try {
      p = fileURLToPath(s);
    } catch {
      fail(index, src, 'malformed file URL');
    }
    return readLocal(p, index, src, limits);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) fail(index, src, `unsupported URL scheme ${s.slice(0, s.indexOf(':'))}`);
  if (isAbsolute(s) || s.startsWith('./') || s.startsWith('../') || /\.(png|jpe?g|webp|gif|bmp)$/i.test(s)) {
    return readLocal(resolve(s), index, src, limits);
  }
  // SGLang accepts bare base64 image data.
  if (s.length >= 16 && /^[A-Za-z0-9+/=\s]+$/.test(s)) return Buffer.from(s, 'base64');
  fail(index, src, 'not a URL, data URI, base64 image or allowed file path');
}
