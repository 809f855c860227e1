import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';
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
  /** Time to establish a connection (TCP + TLS) per attempt. */
  connectTimeoutMs: number;
  /** Refuse loopback, private and link-local addresses (checked on the connected socket). */
  blockPrivateHosts: boolean;
}

export const DEFAULT_MEDIA_LIMITS: MediaLimits = {
  allowedLocalMediaPath: null,
  fetchTimeoutMs: 10_000,
  retries: 2,
  maxBytes: 32 * 1024 * 1024,
  maxRedirects: 5,
  connectTimeoutMs: 3_000,
  blockPrivateHosts: false,
};

/** Addresses an outside-facing server must not be made to fetch from. */
export function isPrivateAddress(address: string): boolean {
  try {
    let a = ipaddr.parse(address);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
    return a.range() !== 'unicast';
  } catch {
    return true;
  }
}

class BlockedAddressError extends Error {}

const agents = new Map<string, Agent>();

/** One connection pool per (connect timeout, guard) setting; the guard checks the socket actually connected. */
function agentFor(limits: MediaLimits): Agent {
  const key = `${limits.connectTimeoutMs}|${limits.blockPrivateHosts}`;
  let agent = agents.get(key);
  if (!agent) {
    const connector = buildConnector({ timeout: limits.connectTimeoutMs });
    agent = new Agent({
      connect: (opts, cb) =>
        connector(opts, (err, socket) => {
          if (err || !socket) return cb(err ?? new Error('no socket'), null);
          const remote = socket.remoteAddress ?? '';
          if (limits.blockPrivateHosts && isPrivateAddress(remote)) {
            socket.destroy();
            return cb(new BlockedAddressError(`the host resolves to a private address (${remote})`), null);
          }
          cb(null, socket);
        }),
    });
    agents.set(key, agent);
  }
  return agent;
}

/** A short, log-safe rendering of an image source for error messages. */
export function describeSource(src: string | Uint8Array): string {
  if (typeof src !== 'string') return `<${src.length} bytes>`;
  if (src.startsWith('data:')) return `${src.slice(0, Math.min(src.indexOf(',') + 1 || 30, 40))}...`;
  return src.length > 80 ? `${src.slice(0, 77)}...` : src;
}

function fail(index: number, src: string | Uint8Array, cause: string): never {
  throw new ImageError(`image ${index + 1} (${describeSource(src)}): ${cause}`, 'image');
}

function describeNetworkError(code: string | undefined, message: string, limits: MediaLimits): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `connection timed out after ${limits.connectTimeoutMs} ms`;
    default:
      return code ? `${code}: ${message}` : message;
  }
}

const TRANSIENT = new Set([408, 429, 500, 502, 503, 504]);

type FetchResponse = Awaited<ReturnType<typeof undiciFetch>>;

async function readCapped(res: FetchResponse, maxBytes: number, onTooLarge: () => never): Promise<Uint8Array> {
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

async function fetchHttp(url: string, index: number, limits: MediaLimits, cancel?: AbortSignal): Promise<Uint8Array> {
  let lastCause = '';
  for (let attempt = 0; attempt <= limits.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (attempt - 1), 2000)));
    if (cancel?.aborted) fail(index, url, 'the request was cancelled');
    const timeout = AbortSignal.timeout(limits.fetchTimeoutMs);
    const signal = cancel ? AbortSignal.any([timeout, cancel]) : timeout;
    try {
      let current = url;
      for (let hop = 0; ; hop++) {
        const res = await undiciFetch(current, { redirect: 'manual', signal, headers: { 'user-agent': 'iris' }, dispatcher: agentFor(limits) });
        if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
          // Each hop goes through the same guarded connector.
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
      if (cancel?.aborted) fail(index, url, 'the request was cancelled');
      const err = e as Error & { cause?: Error & { code?: string } };
      if (err.cause instanceof BlockedAddressError) fail(index, url, err.cause.message);
      lastCause =
        err.name === 'TimeoutError' || err.name === 'AbortError'
          ? `timed out after ${limits.fetchTimeoutMs} ms`
          : `could not be fetched: ${describeNetworkError(err.cause?.code, err.cause?.message ?? err.message, limits)}`;
    }
  }
  fail(index, url, `${lastCause} (after ${limits.retries + 1} attempts)`);
}

async function readLocal(path: string, index: number, src: string, limits: MediaLimits): Promise<Uint8Array> {
  if (limits.allowedLocalMediaPath === null) fail(index, src, 'local files are not allowed (see --allowed-local-media-path)');
  let real: string;
  if (limits.allowedLocalMediaPath !== 'any') {
    // The folder check comes first (on the path as written, then on the real path, so
    // neither `..` nor symlinks lead out): outside it, nothing tells whether a file exists.
    const root = await realpath(limits.allowedLocalMediaPath).catch(() => fail(index, src, 'the allowed media folder does not exist'));
    const inside = (p: string) => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
    const given = resolve(path);
    const rootAsGiven = resolve(limits.allowedLocalMediaPath);
    if (!inside(given) && !(given === rootAsGiven || given.startsWith(rootAsGiven.endsWith(sep) ? rootAsGiven : rootAsGiven + sep))) {
      fail(index, src, 'path is outside the allowed media folder');
    }
    try {
      real = await realpath(given);
    } catch {
      fail(index, src, 'no such file');
    }
    if (!inside(real)) fail(index, src, 'path is outside the allowed media folder');
  } else {
    try {
      real = await realpath(path);
    } catch {
      fail(index, src, 'no such file');
    }
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
export async function loadMediaBytes(src: string | Uint8Array, index: number, limits: MediaLimits, signal?: AbortSignal): Promise<Uint8Array> {
  if (typeof src !== 'string') {
    if (src.length > limits.maxBytes) fail(index, src, `larger than the ${limits.maxBytes} byte limit`);
    return src;
  }
  const s = src.trim();
  if (s.startsWith('http://') || s.startsWith('https://')) return fetchHttp(s, index, limits, signal);
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
