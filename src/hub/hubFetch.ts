/**
 * The one `fetch` every Hub request goes through, handed to @huggingface/hub's functions
 * through their `fetch` option. The library has no timeout, no cancellation and no way to
 * read response headers from its errors; this wrapper adds them in one place:
 *  - a stall timeout (HF_HUB_DOWNLOAD_TIMEOUT): waiting for the response, or for the next
 *    chunk of its body, longer than that aborts the request with HubTimeoutError;
 *  - the caller's AbortSignal;
 *  - the token, sent only to the Hub's own origin (the library rejects tokens that do not
 *    start with "hf_", which the Python library accepts, so it is not given `accessToken`);
 *  - the Hub's X-Error-Code of failed answers (RepoNotFound, RevisionNotFound, GatedRepo,
 *    EntryNotFound), kept by URL so errors can be worded precisely;
 *  - network failures as HubNetworkError with the system code (ECONNREFUSED, ENOTFOUND...).
 */

/** No data arrived for `timeoutMs`. */
export class HubTimeoutError extends Error {
  constructor(
    readonly url: string,
    readonly timeoutMs: number,
  ) {
    super(`no data from ${url} for ${timeoutMs / 1000} s`);
  }
}

/** The connection could not be made or broke off; `code` is the system's (ECONNREFUSED, ...). */
export class HubNetworkError extends Error {
  constructor(
    readonly url: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface HubFetchOptions {
  token?: string;
  /** The Hub's base URL: the token goes to this origin only. */
  endpoint: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Filled with X-Error-Code by response URL for answers that are not ok. */
  errorCodes?: Map<string, string>;
}

function describeNetworkError(e: unknown, url: string): HubNetworkError {
  let cause: any = e;
  // undici wraps the system error: TypeError('fetch failed', { cause: Error{ code } }).
  while (cause?.cause && !cause.code) cause = cause.cause;
  const code: string = cause?.code ?? 'ENETWORK';
  const msg: string = cause?.message ?? String(e);
  return new HubNetworkError(url, code, msg.includes(code) ? msg : `${code}: ${msg}`);
}

export function hubFetch(opts: HubFetchOptions): typeof fetch {
  const hubOrigin = new URL(opts.endpoint).origin;
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    if (opts.signal?.aborted) throw opts.signal.reason;

    const controller = new AbortController();
    const onAbort = () => controller.abort(opts.signal!.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new HubTimeoutError(url, opts.timeoutMs)), opts.timeoutMs);
    };
    const finish = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    // Whatever failed, report the abort reason (timeout or caller) rather than undici's wrapper.
    const failure = (e: unknown) => (controller.signal.aborted ? controller.signal.reason : describeNetworkError(e, url));

    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (opts.token && new URL(url).origin === hubOrigin && !headers.has('authorization')) {
      headers.set('authorization', `Bearer ${opts.token}`);
    }

    let res: Response;
    arm();
    try {
      res = await fetch(input, { ...init, headers, signal: controller.signal });
    } catch (e) {
      finish();
      throw failure(e);
    }
    if (!res.ok) {
      const code = res.headers.get('x-error-code');
      if (code) opts.errorCodes?.set(res.url || url, code);
    }
    if (!res.body) {
      finish();
      return res;
    }

    // The timer runs only while someone waits for the next chunk, so a slow reader
    // (e.g. a busy disk) is not mistaken for a stalled server.
    clearTimeout(timer);
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        arm();
        try {
          const { done, value } = await reader.read();
          clearTimeout(timer);
          if (done) {
            finish();
            c.close();
          } else c.enqueue(value);
        } catch (e) {
          finish();
          c.error(failure(e));
        }
      },
      cancel(reason) {
        finish();
        return reader.cancel(reason);
      },
    });
    const wrapped = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    // The library reads `url` (redirect target, error messages); a new Response has none.
    Object.defineProperty(wrapped, 'url', { value: res.url || url });
    return wrapped;
  };
}
