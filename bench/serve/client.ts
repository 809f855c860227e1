/**
 * One streamed OpenAI chat completion over node:http, timed on arrival of each SSE event:
 * time to first token, the gap before each later chunk that carries tokens, end-to-end
 * latency, and the server's usage (prompt, completion and cached prompt tokens).
 */
import { Agent, request as httpRequest } from 'node:http';

export interface ChatContentPart {
  type: 'text' | 'image_url';
  text?: string;
  image_url?: { url: string };
}

export interface ChatRequestSpec {
  /** User message: plain text or parts (images first, then text). */
  content: string | ChatContentPart[];
  maxTokens: number;
  /** Request logprobs so every generated token comes as its own chunk even if its text is empty. */
  logprobs: boolean;
  ignoreEos?: boolean;
  temperature?: number;
  /** Free-form tag for the report (not sent). */
  tag?: string;
}

export interface RequestResult {
  ok: boolean;
  error: string | null;
  tag?: string;
  /** performance.now() when the request was sent. */
  start: number;
  /** performance.now() of each chunk carrying tokens, and how many tokens each carried. */
  chunkTimes: number[];
  chunkTokens: number[];
  /** ms */
  ttft: number;
  e2e: number;
  /** ms gaps between consecutive token-carrying chunks. */
  itl: number[];
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Bytes of the request body (image data URIs make it large). */
  requestBytes: number;
}

export interface Target {
  host: string;
  port: number;
  model: string;
  apiKey?: string;
}

export function parseBaseUrl(url: string): { host: string; port: number } {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`only http:// base URLs are supported, got ${url}`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { host, port: Number(u.port || 80) };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

export function closeAgent(): void {
  agent.destroy();
}

export async function getJson(t: Pick<Target, 'host' | 'port' | 'apiKey'>, path: string, timeoutMs = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: t.host, port: t.port, path, method: 'GET', agent, headers: t.apiKey ? { authorization: `Bearer ${t.apiKey}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${path}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export interface StreamHooks {
  /** Called on each token-carrying chunk (after recording it). */
  onTokens?: (r: RequestResult) => void;
  signal?: AbortSignal;
}

/** Sends one streamed chat completion; never throws (failures are in the result). */
export function streamChat(t: Target, spec: ChatRequestSpec, hooks: StreamHooks = {}): Promise<RequestResult> {
  const body = JSON.stringify({
    model: t.model,
    messages: [{ role: 'user', content: spec.content }],
    max_tokens: spec.maxTokens,
    temperature: spec.temperature ?? 0,
    ignore_eos: spec.ignoreEos ?? true,
    stream: true,
    stream_options: { include_usage: true },
    ...(spec.logprobs ? { logprobs: true } : {}),
  });
  const r: RequestResult = {
    ok: false,
    error: null,
    tag: spec.tag,
    start: performance.now(),
    chunkTimes: [],
    chunkTokens: [],
    ttft: NaN,
    e2e: NaN,
    itl: [],
    promptTokens: 0,
    completionTokens: 0,
    cachedTokens: 0,
    requestBytes: Buffer.byteLength(body),
  };
  return new Promise((resolve) => {
    let settled = false;
    let sawDone = false;
    let sawUsage = false;
    const finish = (error: string | null) => {
      if (settled) return;
      settled = true;
      r.e2e = performance.now() - r.start;
      if (!error && !sawUsage) error = 'stream ended without a usage chunk';
      r.ok = error === null;
      r.error = error;
      if (r.ok && r.completionTokens === 0) r.completionTokens = r.chunkTokens.reduce((a, b) => a + b, 0);
      resolve(r);
    };
    const onEvent = (data: string) => {
      if (data === '[DONE]') {
        sawDone = true;
        return;
      }
      let m: any;
      try {
        m = JSON.parse(data);
      } catch {
        return finish(`bad SSE data: ${data.slice(0, 120)}`);
      }
      if (m.object === 'error' || m.error) return finish(`server error: ${m.message ?? m.error?.message ?? JSON.stringify(m).slice(0, 200)}`);
      const now = performance.now();
      for (const c of m.choices ?? []) {
        const lp = c.logprobs?.content;
        const n = Array.isArray(lp) && lp.length > 0 ? lp.length : c.delta?.content ? 1 : 0;
        if (n === 0) continue;
        if (r.chunkTimes.length === 0) r.ttft = now - r.start;
        else r.itl.push(now - r.chunkTimes[r.chunkTimes.length - 1]!);
        r.chunkTimes.push(now);
        r.chunkTokens.push(n);
        hooks.onTokens?.(r);
      }
      if (m.usage) {
        sawUsage = true;
        r.promptTokens = m.usage.prompt_tokens ?? 0;
        r.completionTokens = m.usage.completion_tokens ?? 0;
        r.cachedTokens = m.usage.prompt_tokens_details?.cached_tokens ?? 0;
      }
    };
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (t.apiKey) headers.authorization = `Bearer ${t.apiKey}`;
    const req = httpRequest({ host: t.host, port: t.port, path: '/v1/chat/completions', method: 'POST', agent, headers }, (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => finish(`HTTP ${res.statusCode}: ${b.slice(0, 300)}`));
        return;
      }
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of ev.split('\n')) if (line.startsWith('data: ')) onEvent(line.slice(6));
          if (settled) return;
        }
      });
      res.on('end', () => finish(sawDone ? null : 'stream ended without [DONE]'));
      res.on('error', (e) => finish(e.message));
    });
    req.on('error', (e) => finish(e.message));
    hooks.signal?.addEventListener('abort', () => {
      finish('aborted by the benchmark');
      req.destroy();
    }, { once: true });
    r.start = performance.now();
    req.end(body);
  });
}
