// @ts-check
import { createSseParser } from './sse.js';

// sessionStorage: the key lives as long as the browser tab, never on disk beyond the session.
const KEY_STORAGE = 'iris.apiKey';

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

/** @param {string | null} key */
export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** An answer that is not 2xx, with the server's own message. */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @param {Record<string, string>} extra */
function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

/**
 * The message of an error body: SGLang's flat {message} or OpenAI's {error: {message}}.
 * @param {unknown} body
 * @returns {string | null}
 */
export function errorText(body) {
  if (!body || typeof body !== 'object') return null;
  const b = /** @type {{ message?: unknown, error?: { message?: unknown } }} */ (body);
  if (typeof b.message === 'string') return b.message;
  if (b.error && typeof b.error.message === 'string') return b.error.message;
  return null;
}

/** @param {Response} res */
async function httpError(res) {
  const text = await res.text();
  let message = null;
  try {
    message = errorText(JSON.parse(text));
  } catch {
    // Not JSON (a proxy's page, say): show the text itself.
  }
  return new HttpError(res.status, message ?? (text.trim() || `HTTP ${res.status} ${res.statusText}`));
}

/** @returns {Promise<string[]>} the served model names */
export async function fetchModels() {
  const res = await fetch('/v1/models', { headers: headers() });
  if (!res.ok) throw await httpError(res);
  const body = await res.json();
  return (body.data ?? []).map((/** @type {{ id: string }} */ m) => m.id);
}

/**
 * @typedef {{ prompt_tokens: number, completion_tokens: number, prompt_tokens_details?: { cached_tokens?: number } }} Usage
 */

/**
 * POSTs a streaming chat request and reports each piece of text and the final usage.
 * Rejects with HttpError when refused, Error for an error sent mid-stream, AbortError on stop.
 * @param {Record<string, unknown>} body
 * @param {{ signal: AbortSignal, onText: (text: string) => void, onUsage: (usage: Usage) => void }} on
 * @returns {Promise<string | null>} the finish reason
 */
export async function streamChat(body, on) {
  const res = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal: on.signal,
  });
  if (!res.ok || !res.body) throw await httpError(res);
  /** @type {string | null} */
  let finish = null;
  /** @type {Error | null} */
  let failure = null;
  const parser = createSseParser((data) => {
    if (data === '[DONE]' || failure) return;
    const chunk = JSON.parse(data);
    const message = chunk.object === 'error' || chunk.error ? errorText(chunk) : null;
    if (message !== null) {
      failure = new Error(message);
      return;
    }
    const choice = chunk.choices?.[0];
    if (typeof choice?.delta?.content === 'string' && choice.delta.content) on.onText(choice.delta.content);
    if (choice?.finish_reason) finish = choice.finish_reason;
    if (chunk.usage) on.onUsage(chunk.usage);
  });
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.end();
  if (failure) throw failure;
  return finish;
}
