import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectRoot } from '../helpers/paths.js';

const { createSseParser }: typeof import('../../playground/sse.js') = await import(pathToFileURL(join(projectRoot, 'playground', 'sse.js')).href);

function parse(chunks: Uint8Array[]): string[] {
  const events: string[] = [];
  const p = createSseParser((d) => events.push(d));
  for (const c of chunks) p.push(c);
  p.end();
  return events;
}

const STREAM = 'data: {"a":"ü ✓"}\n\n: a comment\nevent: x\ndata: line1\ndata:line2\n\r\ndata: [DONE]\n\n';
const EXPECTED = ['{"a":"ü ✓"}', 'line1\nline2', '[DONE]'];

test('SSE events from one chunk', () => {
  assert.deepEqual(parse([new TextEncoder().encode(STREAM)]), EXPECTED);
});

test('SSE events cut at every byte, UTF-8 characters included', () => {
  const bytes = new TextEncoder().encode(STREAM);
  for (let cut = 1; cut < bytes.length; cut++) {
    assert.deepEqual(parse([bytes.subarray(0, cut), bytes.subarray(cut)]), EXPECTED, `cut at ${cut}`);
  }
  assert.deepEqual(parse([...bytes].map((b) => Uint8Array.of(b))), EXPECTED);
});

test('CRLF line ends, split between chunks, and a last event without its blank line', () => {
  const enc = new TextEncoder();
  assert.deepEqual(parse([enc.encode('data: a\r'), enc.encode('\n\r\ndata: b')]), ['a', 'b']);
});
