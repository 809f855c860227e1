import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ModelLoadError } from '../errors.js';

/** What a `--model-path` argument names: a folder on disk or a Hub model repo. */
export type ModelArg = { kind: 'folder'; dir: string } | { kind: 'repo'; repo: string };

// huggingface_hub's validate_repo_id: [ORG/]NAME of word characters, '-' and '.',
// no '--' or '..' (they would be ambiguous in the cache folder name), at most 96 characters.
const REPO_ID = /^(\b[\w\-.]+\b\/)?\b[\w\-.]+\b$/;

export function isRepoId(s: string): boolean {
  return s.length <= 96 && REPO_ID.test(s) && !s.includes('--') && !s.includes('..');
}

/** Something the user clearly meant as a path: it must exist, never fall back to the Hub. */
function looksLikePath(s: string): boolean {
  return s === '.' || s === '..' || /^(\/|\.\/|\.\.\/|~)/.test(s) || s.includes('\\');
}

function expandHome(s: string): string {
  return s === '~' || s.startsWith('~/') ? join(homedir(), s.slice(1)) : s;
}

/**
 * An existing folder wins over a Hub id of the same spelling (as transformers does), so a
 * local `org/name` folder is never shadowed by the Hub.
 */
export function classifyModelArg(arg: string): ModelArg {
  const path = expandHome(arg);
  const st = statSync(path, { throwIfNoEntry: false });
  if (st?.isDirectory()) return { kind: 'folder', dir: path };
  if (st) throw new ModelLoadError(`--model-path ${arg} is a file; expected a model folder or a Hub model id (ORG/NAME)`);
  if (looksLikePath(arg)) throw new ModelLoadError(`model folder not found: ${arg}${resolve(path) !== arg ? ` (${resolve(path)})` : ''}`);
  if (isRepoId(arg)) return { kind: 'repo', repo: arg };
  throw new ModelLoadError(`--model-path ${arg} is neither an existing folder nor a Hub model id (ORG/NAME)`);
}
