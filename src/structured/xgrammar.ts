import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = typeof XGrammar;

let shared: XGrammarModule | null = null;
/** Lines xgrammar printed while `explained` ran (null: not collecting). */
let printed: string[] | null = null;
let tapped = false;

/**
 * xgrammar prints its error messages (then aborts the WebAssembly call with a bare "Aborted()"),
 * through the console.error it finds when it loads: route that through a tap first.
 */
function tapConsoleError(): void {
  if (tapped) return;
  tapped = true;
  const original = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    if (printed) printed.push(args.map(String).join(' '));
    else original(...args);
  };
}

/**
 * A new xgrammar instance (WebAssembly), the grammar engine SGLang and vLLM use. Its package ships
 * a UMD bundle marked as an ES module, which Node can load neither way (as ESM it finds no
 * `require` or `__filename`; `require` refuses an ESM file), so the bundle is evaluated here as
 * the CommonJS module it is. Each evaluation has its own memory: an instance whose call aborted
 * is not to be trusted again, and is replaced by a new one.
 */
export function loadXgrammar(): XGrammarModule {
  tapConsoleError();
  const require = createRequire(import.meta.url);
  const path = require.resolve('@mlc-ai/web-xgrammar');
  const module = { exports: {} as XGrammarModule };
  new Function('exports', 'module', 'require', '__filename', '__dirname', readFileSync(path, 'utf8'))(module.exports, module, require, path, dirname(path));
  return module.exports;
}

/** This thread's shared xgrammar instance. */
export function xgrammar(): XGrammarModule {
  shared ??= loadXgrammar();
  return shared;
}

/**
 * Runs an xgrammar call; if it fails, the error says what xgrammar printed ("Regex parsing error
 * at position 2: ...") instead of its bare "Aborted()".
 */
export async function explained<T>(call: () => Promise<T>): Promise<T> {
  printed = [];
  try {
    return await call();
  } catch (e) {
    const fatal = printed.map((l) => /\[FATAL\][^:]*:\d+:\s*(.*)$/s.exec(l)?.[1]).filter(Boolean);
    throw new Error(fatal.length ? fatal.join('; ') : (e as Error).message);
  } finally {
    printed = null;
  }
}
