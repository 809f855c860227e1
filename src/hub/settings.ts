import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ModelLoadError } from '../errors.js';

/** What the environment says about reaching the Hub and where its cache lives. */
export interface HubSettings {
  /** Hub base URL without a trailing slash (HF_ENDPOINT). */
  endpoint: string;
  /** Access token (HF_TOKEN, else the token file), or undefined. */
  token: string | undefined;
  /** HF_HUB_OFFLINE: never touch the network. */
  offline: boolean;
  /** HF_HUB_DOWNLOAD_TIMEOUT in ms: how long a request may go without data. */
  timeoutMs: number;
  /** The huggingface_hub cache folder (holds models--ORG--NAME). */
  cacheDir: string;
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const DEFAULT_TIMEOUT_S = 10;

/** huggingface_hub's `_is_true`: these spellings switch a flag on. */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

/** Non-empty value of the first variable set (huggingface_hub treats "" as unset). */
function first(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (huggingface_hub's constants.py). */
export function hfHome(env: NodeJS.ProcessEnv): string {
  const home = env.HOME || homedir();
  return first(env, 'HF_HOME') ?? join(first(env, 'XDG_CACHE_HOME') ?? join(home, '.cache'), 'huggingface');
}

/** $HF_HUB_CACHE, else the deprecated $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv): string {
  return first(env, 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE') ?? join(hfHome(env), 'hub');
}

/** $HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the file `hf auth login` writes. */
export function hubToken(env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = first(env, 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN');
  if (fromEnv) return fromEnv.trim();
  const file = first(env, 'HF_TOKEN_PATH') ?? join(hfHome(env), 'token');
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function hubSettings(env: NodeJS.ProcessEnv): HubSettings {
  const t = Number(first(env, 'HF_HUB_DOWNLOAD_TIMEOUT') ?? DEFAULT_TIMEOUT_S);
  const endpoint = (first(env, 'HF_ENDPOINT') ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  // Checked here so a typo is reported as such, not as an unreachable Hub.
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
    throw new ModelLoadError(`HF_ENDPOINT is not an http(s) URL: ${endpoint}`);
  }
  return {
    endpoint,
    token: hubToken(env),
    // transformers' older switch is honoured too, as huggingface_hub does.
    offline: isTrue(env.HF_HUB_OFFLINE) || isTrue(env.TRANSFORMERS_OFFLINE),
    timeoutMs: Number.isFinite(t) && t > 0 ? t * 1000 : DEFAULT_TIMEOUT_S * 1000,
    cacheDir: hubCacheDir(env),
  };
}
