import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GrammarService } from '../../src/structured/grammarService.js';
import { readGrammarVocab } from '../../src/structured/vocab.js';

/** A byte-level tokenizer.json whose tokens are the 256 single bytes (GPT-2's characters for them) and an end token. */
function byteTokenizer(): { dir: string; chars: string[] } {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCharCode(printable(b) ? b : 256 + extra++));
  const dir = mkdtempSync(join(tmpdir(), 'iris-grammar-'));
  const vocab = Object.fromEntries(chars.map((c, i) => [c, i]));
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify({ model: { type: 'BPE', vocab, merges: [] }, added_tokens: [{ id: 256, content: '<end>', special: true }], decoder: { type: 'ByteLevel' } }),
  );
  return { dir, chars };
}

test('the grammar vocabulary: byte-level decoding, specials and never-UTF-8 bytes left out, restricted lead bytes noted', () => {
  const { dir } = byteTokenizer();
  const v = readGrammarVocab(dir, 260);
  assert.equal(v.vocabType, 'byte_level');
  assert.equal(v.encoded.length, 260);
  assert.equal(v.encoded[256], '', 'special tokens never match text');
  for (const b of [0xc0, 0xc1, 0xf5, 0xff]) assert.equal(v.encoded[b], '', `byte ${b.toString(16)} can never be in UTF-8`);
  assert.notEqual(v.encoded[0xe0], '');
  assert.deepEqual(v.leadAtEnd[0xe0], 0xe0);
  assert.deepEqual(v.byFirstContinuation[0]!, [0x80]);
});

test('constrained walks over single-byte tokens give valid UTF-8 JSON that conforms; bad grammars fail alone', async () => {
  const { dir } = byteTokenizer();
  const g = GrammarService.start(dir, 257);
  try {
    const schema = { type: 'object', properties: { s: { type: 'string', maxLength: 6 }, t: { type: 'string' } }, required: ['s', 't'], additionalProperties: false };
    const c = { kind: 'json_schema' as const, schema: JSON.stringify(schema), strict: true };
    await assert.rejects(g.compile({ kind: 'regex', pattern: '[a-' }), /regex: .*/);
    await g.compile(c);
    let seed = 12345;
    for (let walk = 0; walk < 150; walk++) {
      const id = `w${walk}`;
      await g.open(id, c, [256]);
      const bytes: number[] = [];
      let state = await g.next(id, -1);
      while (!state.terminated) {
        const allowed: number[] = [];
        for (let t = 0; t < 257; t++) if (state.mask[t >> 5]! & (1 << (t & 31))) allowed.push(t);
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const tok = allowed[seed % allowed.length]!;
        if (tok < 256) bytes.push(tok);
        state = await g.next(id, tok);
      }
      g.close(id);
      const text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
      const value = JSON.parse(text) as { s: string; t: string };
      assert.ok([...value.s].length <= 6, text);
      assert.deepEqual(Object.keys(value), ['s', 't']);
    }
  } finally {
    await g.stop();
  }
});

test('a grammar thread that cannot read the tokenizer fails every call instead of leaving it waiting', async () => {
  const g = GrammarService.start(mkdtempSync(join(tmpdir(), 'iris-grammar-empty-')), 300);
  try {
    await assert.rejects(g.compile({ kind: 'regex', pattern: 'a+' }), /tokenizer\.json|ENOENT/);
    await assert.rejects(g.compile({ kind: 'regex', pattern: 'b+' }), /tokenizer\.json|ENOENT/);
  } finally {
    await g.stop();
  }
});
