/**
 * A synthetic byte-level BPE vocabulary the size of Qwen2-VL's (151,646 tokens, logits width
 * 151,936), for measuring xgrammar without the real tokenizer. Tokens are written the way a
 * byte-level BPE vocab.json writes them: every UTF-8 byte mapped to its GPT-2 "byte to unicode"
 * symbol (space = Ġ, newline = Ċ, tab = ĉ).
 *
 * Layout (deterministic; the corpus is text already on disk, read in sorted order):
 *   ids 0..255          the 256 byte symbols, in GPT-2 order ('!' is 0)
 *   then                whitespace runs (Ġ×n, Ċ×n, Ċ + indentation, tabs), JSON fragments (`":"`,
 *                       `",`, `{"`, ...), 2- and 3-digit strings, 300 partial UTF-8 sequences,
 *                       8,000 CJK characters, then the most frequent pre-tokens and substrings
 *                       (with and without a leading Ġ) of the corpus, ranked by count x (bytes - 1)
 *   ids 151346..151645  300 special tokens; <|endoftext|> 151643, <|im_start|> 151644,
 *                       <|im_end|> 151645 (Qwen2's ids)
 *   ids 151646..151935  padding: empty strings (logits rows no token maps to)
 *
 * Corpus: TypeScript's lib/*.d.ts (English prose and code), its localized diagnostic messages
 * (13 languages incl. Chinese, Japanese, Korean, Russian), README.md files under node_modules,
 * and this project's src/**.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const QWEN2VL_TOKENS = 151_646;
export const QWEN2VL_LOGITS = 151_936;
export const N_SPECIAL = 300;
export const ENDOFTEXT = 151_643;
export const IM_START = 151_644;
export const IM_END = 151_645;

/** The project root (this file is at dist/tools/xgrammar-eval/vocab.js or tools/xgrammar-eval/vocab.ts). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try { statSync(join(dir, 'package.json')); return dir; } catch { dir = resolve(dir, '..'); }
  }
  throw new Error('project root not found');
}

/** GPT-2's bytes_to_unicode: byte -> printable symbol. */
export function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const table: string[] = new Array(256);
  for (let i = 0; i < 256; i++) table[bs[i]!] = String.fromCodePoint(cs[i]!);
  return table;
}

/** Byte order of the first 256 ids ('!' first), as in GPT-2 / Qwen vocab.json. */
function byteOrder(): number[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) bs.push(b);
  return bs;
}

const B2U = byteToUnicode();
const encoder = new TextEncoder();

export function encodeBytes(bytes: Uint8Array | number[]): string {
  let s = '';
  for (const b of bytes) s += B2U[b]!;
  return s;
}

export function encodeText(text: string): string {
  return encodeBytes(encoder.encode(text));
}

/** Qwen2's pre-tokenizer split (the case-insensitive contractions spelled out). */
const PRETOKEN = /'(?:[sStTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

function listFiles(dir: string, accept: (name: string) => boolean, depth: number, out: string[]): void {
  let entries: string[];
  try { entries = readdirSync(dir).sort(); } catch { return; }
  for (const name of entries) {
    const p = join(dir, name);
    let st;
    try { st = statSync(p); } catch { continue; }
    if (st.isDirectory()) { if (depth > 0 && name !== '.bin') listFiles(p, accept, depth - 1, out); }
    else if (accept(name) && st.size < 4_000_000) out.push(p);
  }
}

export function corpusFiles(root = projectRoot()): string[] {
  const files: string[] = [];
  const tsLib = join(root, 'node_modules/typescript/lib');
  listFiles(tsLib, (n) => /^lib\..*\.d\.ts$/.test(n) || n === 'diagnosticMessages.generated.json', 1, files);
  listFiles(join(root, 'node_modules'), (n) => n === 'README.md', 3, files);
  listFiles(join(root, 'src'), (n) => n.endsWith('.ts'), 4, files);
  return files;
}

function corpusText(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.json')) {
    try { return Object.values(JSON.parse(text) as Record<string, string>).join('\n'); } catch { return text; }
  }
  return text;
}

const JSON_FRAGMENTS = [
  '":"', '": "', '",', '","', '", "', '{"', '{ "', '"}', '" }', '"]', '["', '[{', '}]', '},', '},{', '}, {', '"},', '"}]', '"],',
  '":{"', '":["', '":[', '":{', '": {', '": [', '": "', '":"', '":-', '":[{', '":[]', '":{}', '":null', '":true', '":false', '": null',
  '": true', '": false', '{}', '[]', '{},', '[],', '"",', '""', '\\"', '\\n', '\\t', '\\\\', '\\u', '\\/', '"\n', '",\n', '{\n', '[\n',
  '}\n', ']\n', '},\n', '],\n', '"\n}', '}\n]', ' {', ' [', ' }', ' ]', ' "', '("', '")', '");', '"))', '"];', '"};', '.",', '?",',
  '!",', ':"', ',"', ',[', ',{', '}}', ']]', ']}', '}]}', '"}}', '}"', '..', '...', '…', ' -', ' --', '---', '----', '::', '->', '=>',
  '==', '===', '!=', '!==', '<=', '>=', '&&', '||', '**', '//', '/*', '*/', '<|', '|>', '</', '/>', '${', '#{', '%s', '%d',
];

const WHITESPACE: string[] = (() => {
  const ws: string[] = [];
  for (let n = 2; n <= 32; n++) ws.push(' '.repeat(n));
  for (let n = 2; n <= 8; n++) ws.push('\n'.repeat(n));
  for (let n = 1; n <= 32; n++) ws.push('\n' + ' '.repeat(n));
  for (let n = 1; n <= 16; n++) ws.push('\n\n' + ' '.repeat(n));
  for (let n = 2; n <= 8; n++) ws.push('\t'.repeat(n));
  for (let n = 1; n <= 8; n++) ws.push('\n' + '\t'.repeat(n));
  ws.push(' \n', '  \n', '\r\n', '\r\n\r\n', ' \r\n', '\n ', ' \t', '\t ');
  return ws;
})();

export function specialTokens(): string[] {
  const named = [
    '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>',
    '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>', '<tool_call>', '</tool_call>',
    '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>',
  ];
  const extra: string[] = [];
  for (let i = 0; extra.length + named.length < N_SPECIAL - 3; i++) extra.push(`<|extra_${i}|>`);
  return [...named, ...extra, '<|endoftext|>', '<|im_start|>', '<|im_end|>'];
}

export interface SyntheticVocab {
  /** Byte-level encoded tokens, length QWEN2VL_LOGITS (padding rows are ''). */
  encoded: string[];
  /** Count of non-empty tokens (QWEN2VL_TOKENS). */
  tokens: number;
  /** First special token id. */
  specialStart: number;
  stopIds: number[];
  buildMs: number;
  summary: Record<string, number>;
}

/**
 * Builds the vocabulary. With blankSpecials the special tokens other than the stop tokens are
 * written as '' (so xgrammar treats them as special and never allows them); otherwise they are
 * their literal text, as a tokenizer's vocab lists them.
 */
export function buildVocab(opts: { blankSpecials?: boolean; root?: string } = {}): SyntheticVocab {
  const t0 = performance.now();
  const regularTarget = QWEN2VL_TOKENS - N_SPECIAL;
  const out: string[] = [];
  const seen = new Set<string>();
  const summary: Record<string, number> = {};
  const add = (tok: string, kind: string): boolean => {
    if (out.length >= regularTarget || tok.length === 0 || seen.has(tok)) return false;
    seen.add(tok);
    out.push(tok);
    summary[kind] = (summary[kind] ?? 0) + 1;
    return true;
  };
  for (const b of byteOrder()) add(B2U[b]!, 'bytes');
  for (const w of WHITESPACE) add(encodeText(w), 'whitespace');
  for (const f of JSON_FRAGMENTS) add(encodeText(f), 'json/punctuation fragments');
  for (let n = 0; n < 100; n++) add(String(n).padStart(2, '0'), 'digit strings');
  for (let n = 0; n < 1000; n++) add(String(n).padStart(3, '0'), 'digit strings');

  const counts = new Map<string, number>();
  for (const file of corpusFiles(opts.root)) {
    const text = corpusText(file);
    for (const m of text.matchAll(PRETOKEN)) {
      const p = m[0];
      if (p.length > 40) continue;
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
  }
  summary['corpus distinct pre-tokens'] = counts.size;

  // Partial UTF-8 sequences (first two bytes of CJK characters) and single CJK characters:
  // characters seen in the corpus first, then the rest of the block in code point order.
  const cjkSeen = new Map<string, number>();
  for (const [p, c] of counts) for (const ch of p) if (/\p{Script=Han}/u.test(ch)) cjkSeen.set(ch, (cjkSeen.get(ch) ?? 0) + c);
  const cjk = [...cjkSeen.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([ch]) => ch);
  for (let cp = 0x4e00; cjk.length < 8000 && cp <= 0x9fff; cp++) { const ch = String.fromCodePoint(cp); if (!cjkSeen.has(ch)) cjk.push(ch); }
  let partial = 0;
  for (const ch of cjk) { if (partial >= 300) break; if (add(encodeBytes(encoder.encode(ch).subarray(0, 2)), 'partial UTF-8 sequences')) partial++; }
  for (const ch of cjk.slice(0, 8000)) add(encodeText(ch), 'CJK characters');

  // Pre-tokens and their substrings (2..8 code points); a pre-token starting with a letter also counts for its Ġ-prefixed form, weighted by the pre-token's count.
  const scores = new Map<string, number>();
  for (const [p, c] of counts) {
    const cps = [...p];
    const bump = (s: string, w: number) => scores.set(s, (scores.get(s) ?? 0) + w);
    bump(p, c * 3);
    if (/^\p{L}/u.test(p)) bump(' ' + p, c);
    if (cps.length < 3) continue;
    for (let i = 0; i < cps.length; i++) {
      for (let len = 2; len <= 8 && i + len <= cps.length; len++) {
        if (i === 0 && len === cps.length) continue;
        bump(cps.slice(i, i + len).join(''), c);
      }
    }
  }
  const ranked = [...scores.entries()]
    .map(([s, c]) => [s, c * (encoder.encode(s).length - 1)] as const)
    .filter(([, score]) => score > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [s] of ranked) {
    if (out.length >= regularTarget) break;
    add(encodeText(s), s.startsWith(' ') ? 'corpus tokens with leading space' : 'corpus tokens');
  }
  // Should the corpus run short: leading-space variants of corpus tokens.
  for (const [s] of ranked) {
    if (out.length >= regularTarget) break;
    if (!s.startsWith(' ')) add(encodeText(' ' + s), 'corpus tokens with leading space');
  }
  if (out.length < regularTarget) throw new Error(`corpus too small: ${out.length} regular tokens`);

  const specials = specialTokens();
  const specialStart = out.length;
  for (const s of specials) {
    const stop = s === '<|endoftext|>' || s === '<|im_end|>';
    out.push(opts.blankSpecials && !stop ? '' : s);
  }
  summary['special tokens'] = specials.length;
  while (out.length < QWEN2VL_LOGITS) out.push('');
  summary['padding (empty)'] = QWEN2VL_LOGITS - QWEN2VL_TOKENS;
  if (out[ENDOFTEXT] !== '<|endoftext|>' || out[IM_END] !== '<|im_end|>') throw new Error('special token ids moved');
  const bytes = out.slice(0, specialStart).map((t) => t.length);
  summary['mean bytes per regular token'] = Math.round((bytes.reduce((a, b) => a + b, 0) / bytes.length) * 100) / 100;
  return { encoded: out, tokens: QWEN2VL_TOKENS, specialStart, stopIds: [ENDOFTEXT, IM_END], buildMs: performance.now() - t0, summary };
}

/** Inverse of the byte-level encoding: the text a token stands for (lossy for partial UTF-8). */
export function decodeToken(tok: string): string {
  const u2b = new Map<string, number>();
  B2U.forEach((u, b) => u2b.set(u, b));
  const bytes: number[] = [];
  for (const ch of tok) { const b = u2b.get(ch); if (b === undefined) return tok; bytes.push(b); }
  return Buffer.from(bytes).toString('utf8');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const v = buildVocab();
  console.log(JSON.stringify({ buildMs: Math.round(v.buildMs), length: v.encoded.length, specialStart: v.specialStart, stopIds: v.stopIds, summary: v.summary }, null, 2));
  const sample = [1000, 5000, 20000, 60000, 100000, 150000].map((i) => `${i}: ${JSON.stringify(v.encoded[i])} = ${JSON.stringify(decodeToken(v.encoded[i]!))}`);
  console.log(sample.join('\n'));
}
