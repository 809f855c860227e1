import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = typeof XGrammar;

let loaded: XGrammarModule | null = null;

/**
 * xgrammar (WebAssembly), the grammar engine SGLang and vLLM use. Its package ships a UMD bundle
 * marked as an ES module, which Node can load neither way (as ESM it finds no `require` or
 * `__filename`; `require` refuses an ESM file), so the bundle is evaluated here as the CommonJS
 * module it is. Loaded once per thread (each thread has its own WebAssembly instance).
 */
export function xgrammar(): XGrammarModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const path = require.resolve('@mlc-ai/web-xgrammar');
  const module = { exports: {} as XGrammarModule };
  new Function('exports', 'module', 'require', '__filename', '__dirname', readFileSync(path, 'utf8'))(module.exports, module, require, path, dirname(path));
  loaded = module.exports;
  return loaded;
}
