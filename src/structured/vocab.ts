import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A tokenizer's vocabulary as xgrammar reads it: each id's token text as stored, and how to decode it. */
export interface GrammarVocab {
  /** Token text by id (empty for ids without one, for special tokens, which never match text, and for tokens that can never be part of valid UTF-8). */
  encoded: string[];
  /** By continuation byte (0x80-0xBF, index byte - 0x80): the tokens whose text starts with it. */
  byFirstContinuation: number[][];
  /** Tokens ending in a lead byte that narrows the next byte (see SECOND_BYTE), by id. */
  leadAtEnd: Record<number, number>;
  vocabType: 'byte_level' | 'byte_fallback' | 'raw';
  /** SentencePiece tokenizers that put a space before the first word. */
  prependSpace: boolean;
}

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> | Array<[string, number]> };
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  decoder?: Json | null;
  pre_tokenizer?: Json | null;
  normalizer?: Json | null;
}
type Json = { type?: string; decoders?: Json[]; pretokenizers?: Json[]; normalizers?: Json[]; prepend_scheme?: string; add_prefix_space?: boolean; prepend?: string };

/** Every component of a (possibly Sequence) tokenizer part. */
function parts(j: Json | null | undefined): Json[] {
  if (!j) return [];
  const inner = j.decoders ?? j.pretokenizers ?? j.normalizers;
  return inner ? inner.flatMap(parts) : [j];
}

/**
 * Reads tokenizer.json into xgrammar's form, sized to the model's logits. The decoding kind comes
 * from the tokenizer's decoder, as xgrammar's Hugging Face loader decides it: ByteLevel (GPT-2
 * style: Qwen, Llama 3, DeepSeek) or ByteFallback (SentencePiece: Gemma, Mistral, Vicuna), else raw.
 */
export function readGrammarVocab(modelDir: string, vocabSize: number): GrammarVocab {
  const tj = JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const encoded = new Array<string>(vocabSize).fill('');
  const vocab = tj.model?.vocab ?? {};
  if (Array.isArray(vocab)) vocab.forEach(([piece], id) => id < vocabSize && (encoded[id] = piece));
  else for (const [piece, id] of Object.entries(vocab)) if (id < vocabSize) encoded[id] = piece;
  for (const t of tj.added_tokens ?? []) if (t.id < vocabSize) encoded[t.id] = t.special ? '' : t.content;
  const decoders = parts(tj.decoder);
  const has = (list: Json[], type: string) => list.some((d) => d.type === type);
  const vocabType = has(decoders, 'ByteLevel') ? 'byte_level' : has(decoders, 'ByteFallback') ? 'byte_fallback' : 'raw';
  const meta = [...parts(tj.pre_tokenizer), ...parts(tj.normalizer)];
  const prependSpace =
    vocabType === 'byte_fallback' &&
    meta.some((p) => (p.type === 'Metaspace' && (p.prepend_scheme ? p.prepend_scheme !== 'never' : p.add_prefix_space !== false)) || (p.type === 'Prepend' && p.prepend === '\u2581'));
  const byFirstContinuation = Array.from({ length: 64 }, () => [] as number[]);
  const leadAtEnd: Record<number, number> = {};
  encoded.forEach((text, id) => {
    if (!text) return;
    const bytes = tokenBytes(text, vocabType);
    if (!utf8Possible(bytes)) {
      encoded[id] = '';
      return;
    }
    if (bytes[0]! >= 0x80 && bytes[0]! < 0xc0) byFirstContinuation[bytes[0]! - 0x80]!.push(id);
    const last = bytes[bytes.length - 1]!;
    if (SECOND_BYTE[last]) leadAtEnd[id] = last;
  });
  return { encoded, vocabType, prependSpace, byFirstContinuation, leadAtEnd };
}

/** GPT-2's byte-to-character table, reversed: the character a byte-level token uses for each byte. */
const BYTE_OF_CHAR = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) map.set(String.fromCharCode(printable(b) ? b : 256 + extra++), b);
  return map;
})();

/** The bytes a token stands for. */
function tokenBytes(text: string, vocabType: GrammarVocab['vocabType']): number[] {
  if (vocabType === 'byte_level') {
    const bytes = [...text].map((c) => BYTE_OF_CHAR.get(c));
    if (bytes.every((b) => b !== undefined)) return bytes as number[];
  }
  if (vocabType === 'byte_fallback') {
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
    if (m) return [parseInt(m[1]!, 16)];
    text = text.replace(/\u2581/g, ' ');
  }
  return [...Buffer.from(text, 'utf8')];
}

/**
 * The second byte a UTF-8 lead byte allows, where it is narrower than any continuation byte
 * (no overlong forms, no surrogates, nothing above U+10FFFF).
 */
export const SECOND_BYTE: Record<number, [number, number]> = { 0xe0: [0xa0, 0xbf], 0xed: [0x80, 0x9f], 0xf0: [0x90, 0xbf], 0xf4: [0x80, 0x8f] };

/**
 * False when the bytes cannot occur in any valid UTF-8 text: a byte never used (C0, C1, F5-FF),
 * or a lead byte followed inside the token by a byte it does not allow. xgrammar's byte-level
 * matching lets such sequences through its character classes, so constrained output would carry
 * invalid text (decoded as U+FFFD); such tokens are left out of constrained decoding.
 */
function utf8Possible(bytes: number[]): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0xc0 || b === 0xc1 || b >= 0xf5) return false;
    const second = SECOND_BYTE[b];
    const next = bytes[i + 1];
    if (second && next !== undefined && (next < second[0] || next > second[1])) return false;
  }
  return true;
}
