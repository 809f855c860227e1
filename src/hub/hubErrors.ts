import { HubApiError } from '@huggingface/hub';
import { ModelLoadError } from '../errors.js';
import { HubNetworkError, HubTimeoutError } from './hubFetch.js';

/** What an error message needs to know about the request that failed. */
export interface ErrorContext {
  repo: string;
  revision: string;
  endpoint: string;
  hasToken: boolean;
  /** X-Error-Code by response URL, from hubFetch. */
  errorCodes: Map<string, string>;
  /** The file being downloaded, if any. */
  file?: string;
}

/**
 * Failures that mean "the Hub is not there right now" rather than "the Hub said no": the
 * cases where huggingface_hub falls back to a cached snapshot.
 */
export function isUnreachable(e: unknown): boolean {
  return e instanceof HubNetworkError || e instanceof HubTimeoutError || (e instanceof HubApiError && e.statusCode >= 500);
}

/** A short reason for an unreachable Hub, for warnings and errors. */
export function unreachableReason(e: unknown): string {
  if (e instanceof HubTimeoutError) return `no answer within ${e.timeoutMs / 1000} s`;
  if (e instanceof HubApiError) return `HTTP ${e.statusCode}`;
  return (e as Error).message;
}

const LOGIN_HINT = 'set HF_TOKEN to a token with access to it, or log in with `hf auth login`';

/**
 * Turns a failure from the Hub into a ModelLoadError naming the repo and what to do.
 * A caller's abort, and errors that are already ModelLoadErrors, pass through unchanged.
 */
export function explainHubError(e: unknown, ctx: ErrorContext): unknown {
  if (e instanceof ModelLoadError) return e;
  if ((e as Error)?.name === 'AbortError') return e;
  const what = ctx.file ? `downloading ${ctx.file} of ${ctx.repo}` : `looking up ${ctx.repo}`;
  if (e instanceof HubTimeoutError) {
    return new ModelLoadError(
      `timed out ${what}: no data from the Hub for ${e.timeoutMs / 1000} s (HF_HUB_DOWNLOAD_TIMEOUT raises the limit)`,
    );
  }
  if (e instanceof HubNetworkError) return new ModelLoadError(`could not reach the Hub at ${ctx.endpoint} while ${what} (${e.message})`);
  if (!(e instanceof HubApiError)) return new ModelLoadError(`${what}: ${(e as Error)?.message ?? String(e)}`);

  const code = ctx.errorCodes.get(e.url);
  const status = e.statusCode;
  if (code === 'EntryNotFound' || (status === 404 && ctx.file)) {
    return new ModelLoadError(`${ctx.file ?? 'a file'} not found in ${ctx.repo} at revision ${ctx.revision}`);
  }
  if (code === 'RevisionNotFound') return new ModelLoadError(`revision "${ctx.revision}" not found in ${ctx.repo} (a branch, tag or full commit sha)`);
  if (code === 'GatedRepo' || status === 401 || status === 403) {
    if (!ctx.hasToken) {
      return new ModelLoadError(
        `${ctx.repo} needs authentication (HTTP ${status}): it is gated or private, or does not exist; ${LOGIN_HINT}`,
      );
    }
    return new ModelLoadError(
      `${ctx.repo}: the Hub refused the token (HTTP ${status}): it is invalid or has no access to this gated or private repo ` +
        `(request access on its page at ${ctx.endpoint}/${ctx.repo}); ${LOGIN_HINT}`,
    );
  }
  if (status === 404) {
    const why = code === 'RepoNotFound' || !code ? `model ${ctx.repo} not found on the Hub at ${ctx.endpoint}` : `${ctx.repo}: ${code}`;
    return new ModelLoadError(`${why} (and no folder of that name exists here)${ctx.hasToken ? '' : `; if it is private, ${LOGIN_HINT}`}`);
  }
  return new ModelLoadError(`${what}: the Hub answered HTTP ${status}: ${e.message}`);
}
