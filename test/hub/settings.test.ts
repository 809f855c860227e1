/** HF_* settings are read as huggingface_hub reads them. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hubSettings } from '../../src/hub/index.js';

const root = mkdtempSync(join(tmpdir(), 'iris-hub-env-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('cache folder: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', () => {
  const home = '/home/u';
  assert.equal(hubSettings({ HOME: home, HF_HUB_CACHE: '/c', HF_HOME: '/h', XDG_CACHE_HOME: '/x' }).cacheDir, '/c');
  assert.equal(hubSettings({ HOME: home, HF_HOME: '/h', XDG_CACHE_HOME: '/x' }).cacheDir, '/h/hub');
  assert.equal(hubSettings({ HOME: home, XDG_CACHE_HOME: '/x' }).cacheDir, '/x/huggingface/hub');
  assert.equal(hubSettings({ HOME: home }).cacheDir, '/home/u/.cache/huggingface/hub');
  // An empty variable counts as unset, as in huggingface_hub.
  assert.equal(hubSettings({ HOME: home, HF_HUB_CACHE: '' }).cacheDir, '/home/u/.cache/huggingface/hub');
});

test('token: HF_TOKEN, else $HF_TOKEN_PATH, else $HF_HOME/token', () => {
  const hfHome = mkdtempSync(join(root, 'home-'));
  writeFileSync(join(hfHome, 'token'), 'hf_from_home\n');
  const other = join(root, 'other-token');
  writeFileSync(other, 'hf_from_path');
  assert.equal(hubSettings({ HF_HOME: hfHome, HF_TOKEN: 'hf_env' }).token, 'hf_env');
  assert.equal(hubSettings({ HF_HOME: hfHome, HF_TOKEN_PATH: other }).token, 'hf_from_path');
  assert.equal(hubSettings({ HF_HOME: hfHome }).token, 'hf_from_home');
  assert.equal(hubSettings({ HF_HOME: join(root, 'nowhere') }).token, undefined);
});

test('endpoint, offline flag and timeout', () => {
  const s = hubSettings({ HOME: root });
  assert.equal(s.endpoint, 'https://huggingface.co');
  assert.equal(s.offline, false);
  assert.equal(s.timeoutMs, 10_000);
  const t = hubSettings({ HOME: root, HF_ENDPOINT: 'https://mirror.example/', HF_HUB_OFFLINE: 'true', HF_HUB_DOWNLOAD_TIMEOUT: '2.5' });
  assert.equal(t.endpoint, 'https://mirror.example');
  assert.equal(t.offline, true);
  assert.equal(t.timeoutMs, 2500);
  assert.equal(hubSettings({ HOME: root, HF_HUB_OFFLINE: '0' }).offline, false);
  assert.equal(hubSettings({ HOME: root, HF_HUB_OFFLINE: 'YES' }).offline, true);
});

test('an HF_ENDPOINT that is not an http(s) URL is named', () => {
  assert.throws(() => hubSettings({ HOME: root, HF_ENDPOINT: 'huggingface.co' }), /HF_ENDPOINT is not an http\(s\) URL: huggingface\.co/);
  assert.throws(() => hubSettings({ HOME: root, HF_ENDPOINT: 'ftp://x' }), /HF_ENDPOINT/);
});
