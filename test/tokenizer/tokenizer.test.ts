import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { ModelLoadError } from '../../src/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const modelDir = join(root, 'test', 'fixtures', 'golden', 'qwen2_5_vl', 'model');
const tok = TextTokenizer.load(modelDir);

test('special tokens in text become single ids; no BOS is added (Qwen)', () => {
  const ids = tok.encode('<|im_start|>user\nhi<|im_end|>\n');
  assert.equal(ids[0], 288);
  assert.ok(ids.includes(289));
  assert.deepEqual(tok.encode('hello'), tok.encode('hello', { addSpecialTokens: true }));
  assert.notEqual(tok.encode('hello')[0], 287);
  assert.deepEqual(tok.encode(''), []);
});

test('ids, vocabulary and special-token sets', () => {
  assert.equal(tok.vocabSize, 300);
  assert.equal(tok.tokenToId('<|image_pad|>'), 293);
  assert.equal(tok.idToToken(293), '<|image_pad|>');
  assert.equal(tok.tokenToId('<|no such token|>'), undefined);
  assert.deepEqual([...tok.eosTokenIds], [289]);
  assert.equal(tok.bosTokenId, null);
  assert.equal(tok.padTokenId, 287);
  for (let id = 287; id <= 294; id++) assert.ok(tok.specialTokenIds.has(id), `special ${id}`);
  // <tool_call>, <|fim_*|> are added but not special: decode keeps them.
  for (let id = 295; id <= 299; id++) assert.ok(!tok.specialTokenIds.has(id), `not special ${id}`);
  assert.equal(tok.specialTokens.eos_token, '<|im_end|>');
  assert.equal(tok.specialTokens.bos_token, undefined);
});

test('decode: round trip, skipping special tokens, empty and unknown ids', () => {
  const text = 'Hello, world! 123 ünïcode 中文';
  assert.equal(tok.decode(tok.encode(text)), text);
  const ids = [288, ...tok.encode('hi'), 297, 289];
  assert.equal(tok.decode(ids), '<|im_start|>hi<|fim_prefix|><|im_end|>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'hi<|fim_prefix|>');
  assert.equal(tok.decode([]), '');
  assert.equal(tok.decode([288], { skipSpecialTokens: true }), '');
  // Ids past the tokenizer (padded embedding rows) decode to nothing, as in the Rust tokenizers.
  assert.equal(tok.decode([...tok.encode('a'), 5000, ...tok.encode('b')]), 'ab');
});

test('a missing tokenizer.json is a ModelLoadError naming the path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iris-tok-'));
  try {
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => {
      assert.ok(e instanceof ModelLoadError);
      assert.ok(e.message.includes(join(dir, 'tokenizer.json')), e.message);
      return true;
    });
    writeFileSync(join(dir, 'tokenizer.json'), '{not json');
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => e instanceof ModelLoadError && e.message.includes(join(dir, 'tokenizer.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
