import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonScanner } from '../../src/tools/json.js';
import { rng } from './helpers.js';

/** The scanner's verdict on a whole text: one JSON value, whitespace around it allowed. */
function scans(text: string): boolean {
  const s = new JsonScanner({ leadingWhitespace: true });
  const chars = Array.from(text);
  for (let i = 0; i < chars.length; i++) {
    const r = s.push(chars[i]!);
    if (r === 'error') return false;
    if (r === 'done' || r === 'doneBefore') {
      const rest = chars.slice(r === 'done' ? i + 1 : i).join('');
      return /^[ \t\n\r]*$/.test(rest);
    }
  }
  return s.complete();
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 5 : 7));
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return [0, -1, 3.25, 1e21, -0.5e-7, 12345678901234567890, 7][Math.floor(r() * 7)];
    case 3:
      return ['', 'a', 'é"\\/\n\t\u0001', '🌍 日本', '\u2028'][Math.floor(r() * 5)];
    case 4:
      return 'k' + Math.floor(r() * 10);
    case 5:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, (_, i) => [`p${i}`, randomValue(r, depth + 1)]));
  }
}

const ALPHABET = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', '9', '-', '+', '.', 'e', 'E', ' ', '\n', 't', 'r', 'f', 'n', 'a', 'l', 's', '\u0000', '\u001f', 'é', '🌍'];

test('the incremental scanner agrees with JSON.parse on valid and mutated JSON', () => {
  const r = rng(42);
  let valid = 0;
  let invalid = 0;
  for (let i = 0; i < 4000; i++) {
    let text = JSON.stringify(randomValue(r, 0), null, r() < 0.3 ? 2 : undefined) ?? 'null';
    if (r() < 0.25) text = ` ${text}\n `;
    const edits = r() < 0.2 ? 0 : 1 + Math.floor(r() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(r() * (text.length + 1));
      const c = ALPHABET[Math.floor(r() * ALPHABET.length)]!;
      const op = r();
      text = op < 0.4 ? text.slice(0, at) + c + text.slice(at) : op < 0.7 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + c + text.slice(at + 1);
    }
    const expected = parses(text);
    assert.equal(scans(text), expected, JSON.stringify(text));
    if (expected) valid++;
    else invalid++;
  }
  assert.ok(valid > 800 && invalid > 800, `${valid} valid, ${invalid} invalid`);
});

test('the scanner: fixed cases', () => {
  for (const ok of ['0', '-0', '1.5e+3', '"\\ud83c"', '{"a":[1,{"b":null}],"c":"}"}', '[]', '{}', 'true', ' [ 1 , 2 ] ']) assert.equal(scans(ok), true, ok);
  for (const bad of ['01', '1.', '.5', '-', '1e', '+1', '"\\x"', '"\\u12"', '"a\nb"', '{"a"}', '{"a":1,}', '[1,]', 'tru', 'nul', '{,}', '[1 2]', '{"a":1}}', '"abc', '']) assert.equal(scans(bad), false, bad);
  // Completion is reported on the closing character; a number only when something follows it.
  const s = new JsonScanner();
  assert.deepEqual(Array.from('{"a":1}', (c) => s.push(c)), ['more', 'more', 'more', 'more', 'more', 'more', 'done']);
  const n = new JsonScanner();
  assert.deepEqual(Array.from('12,', (c) => n.push(c)), ['more', 'more', 'doneBefore']);
  assert.equal(new JsonScanner().push(' '), 'error', 'leading whitespace only when asked');
});
