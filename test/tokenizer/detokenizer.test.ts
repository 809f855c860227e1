import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { IncrementalDetokenizer, type DetokenizerBackend } from '../../src/tokenizer/detokenizer.js';
import { StopStringMatcher } from '../../src/tokenizer/stopStrings.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const tok = TextTokenizer.load(join(root, 'test', 'fixtures', 'golden', 'qwen2_5_vl', 'model'));

/** GPT-2 byte-level alphabet: byte -> the character standing for it in tokenizer.json. */
function byteChar(b: number): string {
  const direct = (x: number) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (direct(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!direct(x)) n++;
  return String.fromCharCode(256 + n);
}
const byteId = (b: number) => {
  const id = tok.tokenToId(byteChar(b));
  assert.notEqual(id, undefined, `byte ${b}`);
  return id!;
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function stream(ids: readonly number[], skipSpecialTokens = true): string[] {
  const d = new IncrementalDetokenizer(tok, { skipSpecialTokens });
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  return pieces;
}

test('multi-byte characters split across tokens are never emitted broken', () => {
  const text = 'Grüße 你好😀 — 中文🎉 ok';
  const ids = tok.encode(text);
  // This tiny vocabulary spells CJK and emoji byte by byte: check that a split really happens.
  assert.ok(ids.some((id) => tok.decode([id]).includes('\uFFFD')));
  const pieces = stream(ids);
  assert.equal(pieces.join(''), text);
  for (const p of pieces) {
    assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)}`);
    assert.ok(!LONE_SURROGATE.test(p), `piece ${JSON.stringify(p)}`);
  }
  // The 4 bytes of 😀 arrive in 4 tokens: the first three emit nothing, the fourth the emoji.
  const emoji = [0xf0, 0x9f, 0x98, 0x80].map(byteId);
  assert.deepEqual(stream(emoji), ['', '', '', '😀', '']);
});

test('invalid bytes come out as U+FFFD once later tokens show they are invalid', () => {
  const d = new IncrementalDetokenizer(tok);
  // A lone continuation byte could not be known invalid alone... it is held one step, then emitted.
  assert.equal(d.push(byteId(0x92)), '');
  assert.equal(d.push(byteId(0x89)), '\uFFFD');
  assert.equal(d.push(byteId(0x41)), '\uFFFDA');
  // A truncated character followed by ASCII.
  assert.equal(d.push(byteId(0xe4)), '');
  assert.equal(d.push(byteId(0xb8)), '');
  assert.equal(d.push(byteId(0x42)), '\uFFFDB');
  // At the end, an unfinished character is flushed as U+FFFD, as a full decode shows it.
  assert.equal(d.push(byteId(0xf0)), '');
  assert.equal(d.flush(), '\uFFFD');
});

test('long runs of invalid bytes keep the decode window short and stay exact', () => {
  let maxWindow = 0;
  const backend: DetokenizerBackend = {
    specialTokenIds: tok.specialTokenIds,
    decode(ids, opts) {
      maxWindow = Math.max(maxWindow, ids.length);
      return tok.decode(ids, opts);
    },
  };
  const ids = [...Array<number>(50).fill(byteId(0x80)), ...[0xf0, 0x9f, 0x98, 0x80].map(byteId), ...tok.encode(' fine'), ...Array<number>(30).fill(byteId(0xbf))];
  const d = new IncrementalDetokenizer(backend);
  let out = '';
  for (const id of ids) out += d.push(id);
  out += d.flush();
  assert.equal(out, tok.decode(ids));
  assert.equal(out, '\uFFFD'.repeat(50) + '😀 fine' + '\uFFFD'.repeat(30));
  assert.ok(maxWindow <= 10, `window grew to ${maxWindow}`);
});

test('random token streams: concatenated pieces equal a one-shot decode', () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 400; trial++) {
    const ids = Array.from({ length: 1 + Math.floor(rnd() * 40) }, () =>
      // Mostly ids of non-ASCII bytes, to make partial and invalid UTF-8 common.
      rnd() < 0.6 ? 94 + Math.floor(rnd() * 190) : Math.floor(rnd() * tok.vocabSize),
    );
    for (const skip of [true, false]) {
      assert.equal(stream(ids, skip).join(''), tok.decode(ids, { skipSpecialTokens: skip }), JSON.stringify({ ids, skip }));
    }
  }
});

test('special tokens: skipped by default, kept on request', () => {
  const ids = [...tok.encode('hi'), 289, ...tok.encode('there'), 297];
  assert.equal(stream(ids).join(''), 'hithere<|fim_prefix|>');
  assert.equal(stream(ids, false).join(''), 'hi<|im_end|>there<|fim_prefix|>');
  const d = new IncrementalDetokenizer(tok);
  d.pushMany(ids);
  assert.equal(d.tokenCount, ids.length);
});

test('stop strings: held back across pieces, cut before, not returned', () => {
  const m = new StopStringMatcher(['STOP']);
  assert.deepEqual(m.push('Hel'), { text: 'Hel', stopped: null });
  assert.deepEqual(m.push('lo wo'), { text: 'lo wo', stopped: null });
  assert.deepEqual(m.push('rld ST'), { text: 'rld ', stopped: null }); // "ST" may start STOP
  assert.deepEqual(m.push('OP and more'), { text: '', stopped: 'STOP' });
  assert.deepEqual(m.push('later'), { text: '', stopped: 'STOP' });
  assert.equal(m.stopped, 'STOP');
  assert.equal(m.flush(), '');
});

test('stop strings: a false start is released, the earliest match wins, flush returns held text', () => {
  const m = new StopStringMatcher(['</s>', 'END']);
  assert.deepEqual(m.push('a<'), { text: 'a', stopped: null });
  assert.deepEqual(m.push('/x E'), { text: '</x ', stopped: null });
  assert.equal(m.flush(), 'E');

  const two = new StopStringMatcher(['world', 'lo']);
  assert.deepEqual(two.push('hello world'), { text: 'hel', stopped: 'lo' });

  const keep = new StopStringMatcher(['\n\n'], true);
  assert.deepEqual(keep.push('a\n'), { text: 'a', stopped: null });
  assert.deepEqual(keep.push('\nb'), { text: '\n\n', stopped: '\n\n' });

  const none = new StopStringMatcher([]);
  assert.deepEqual(none.push('anything'), { text: 'anything', stopped: null });
});

test('stop string spanning token boundaries in a detokenized stream', () => {
  const ids = tok.encode('The answer is 42.\n\nUser: and then 😀');
  const d = new IncrementalDetokenizer(tok);
  const m = new StopStringMatcher(['\n\nUser:']);
  let out = '';
  let stopped: string | null = null;
  for (const id of ids) {
    const r = m.push(d.push(id));
    out += r.text;
    if (r.stopped) {
      stopped = r.stopped;
      break;
    }
  }
  assert.equal(stopped, '\n\nUser:');
  assert.equal(out, 'The answer is 42.');
});
