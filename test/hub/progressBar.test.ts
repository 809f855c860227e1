/** The download progress renderer: a live line per file on a terminal, one log line per file elsewhere. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderDownloadProgress } from '../../src/hub/index.js';

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (s: string) => (out.push(s), true) } };
}

test('not a terminal: one line per finished file with its size and time, nothing while it runs', () => {
  const { out, stream } = sink(false);
  let t = 0;
  const p = renderDownloadProgress(stream, () => t);
  p({ file: 'config.json', bytes: 0, total: 2_000_000, done: false });
  t = 500;
  p({ file: 'config.json', bytes: 1_000_000, total: 2_000_000, done: false });
  assert.equal(out.length, 0);
  t = 1000;
  p({ file: 'config.json', bytes: 2_000_000, total: 2_000_000, done: true });
  assert.deepEqual(out, ['downloaded config.json: 2.00 MB in 1.0 s (2.00 MB/s)\n']);
});

test('a terminal: the line is redrawn in place with bytes, percent, speed and ETA, then kept', () => {
  const { out, stream } = sink(true);
  let t = 0;
  const p = renderDownloadProgress(stream, () => t);
  p({ file: 'model.safetensors', bytes: 0, total: 4_000_000, done: false });
  t = 1000;
  p({ file: 'model.safetensors', bytes: 1_000_000, total: 4_000_000, done: false });
  t = 1010; // too soon after the last redraw: skipped
  p({ file: 'model.safetensors', bytes: 1_010_000, total: 4_000_000, done: false });
  t = 4000;
  p({ file: 'model.safetensors', bytes: 4_000_000, total: 4_000_000, done: true });
  assert.equal(out.length, 3);
  assert.ok(out.every((l) => l.startsWith('\r\x1b[2Kmodel.safetensors')));
  assert.match(out[1]!, /1\.00 MB \/ 4\.00 MB\s+25%\s+1\.00 MB\/s\s+ETA 3\.0 s$/);
  assert.match(out[2]!, /4\.00 MB \/ 4\.00 MB\s+100%\s+1\.00 MB\/s\s+done in 4\.0 s\n$/);
});

test('a resumed download counts its speed from the bytes it had', () => {
  const { out, stream } = sink(false);
  let t = 0;
  const p = renderDownloadProgress(stream, () => t);
  p({ file: 'w.safetensors', bytes: 3_000_000, total: 4_000_000, done: false });
  t = 2000;
  p({ file: 'w.safetensors', bytes: 4_000_000, total: 4_000_000, done: true });
  assert.match(out[0]!, /\(500 kB\/s\)/);
});
