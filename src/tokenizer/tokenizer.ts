import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelLoadError } from '../errors.js';

/** tokenizer_config.json as far as we read it; everything else stays in `raw`. */
export type TokenizerConfigJson = Record<string, unknown>;

export interface EncodeOptions {
  /**
   * Let the post-processor add BOS/EOS etc. Off by default: chat prompts come from the template,
   * which already writes every special token (transformers renders then encodes with
   * add_special_tokens=False). Qwen's post-processor adds nothing either way.
   */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** Defaults to tokenizer_config's clean_up_tokenization_spaces, else false (transformers >= 4.45). */
  cleanUpTokenizationSpaces?: boolean;
}

/** Names transformers puts in `special_tokens_map` and hands to chat templates. */
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** A token in tokenizer_config may be a string or an AddedToken dict {content, ...}. */
export function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return null;
}

/** The special-token strings a chat template sees (bos_token, eos_token, ..., additional_special_tokens). */
export function specialTokensMap(config: TokenizerConfigJson): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const s = tokenContent(config[key]);
    if (s !== null) out[key] = s;
  }
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra)) {
    const list = extra.map(tokenContent).filter((s): s is string => s !== null);
    if (list.length) out.additional_special_tokens = list;
  }
  return out;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelLoadError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError(`${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * A thin, typed wrapper over @huggingface/tokenizers (tokenizer.json). It adds what the engine
 * needs and the library leaves implicit: id-set lookups for special tokens, EOS ids, tolerant
 * decoding (empty input, ids beyond the tokenizer's vocabulary such as padded embedding rows).
 */
/** Inverse of GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+. */
const UNICODE_TO_BYTE: Map<number, number> = (() => {
  const m = new Map<number, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m.set(printable ? b : 256 + extra++, b);
  }
  return m;
})();

export class TextTokenizer {
  /** One past the largest token id, added tokens included (the model's vocab may be padded larger). */
  readonly vocabSize: number;
  /** Ids skipped by decode(skipSpecialTokens): added tokens flagged special, plus the config's named tokens. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** From tokenizer_config eos_token; the engine merges these with generation_config's eos_token_id. */
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Special-token strings for chat templates (bos_token, eos_token, ...). */
  readonly specialTokens: Readonly<Record<string, string | string[]>>;
  readonly config: Readonly<TokenizerConfigJson>;
  private readonly tok: Tokenizer;
  private readonly cleanUp: boolean;
  private readonly byteLevel: boolean;
  private readonly addedIds: Set<number>;

  constructor(tokenizerJson: object, config: TokenizerConfigJson, where = 'tokenizer.json') {
    try {
      this.tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ModelLoadError(`${where}: unsupported or malformed tokenizer: ${(e as Error).message}`);
    }
    this.config = config;
    this.cleanUp = config.clean_up_tokenization_spaces === true;
    this.specialTokens = specialTokensMap(config);

    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const special = new Set<number>();
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) special.add(id);
    for (const v of Object.values(this.specialTokens)) {
      for (const s of Array.isArray(v) ? v : [v]) {
        const id = this.tok.token_to_id(s);
        if (id !== undefined) special.add(id);
      }
    }
    this.specialTokenIds = special;
    this.addedIds = new Set(this.tok.get_added_tokens_decoder().keys());
    this.byteLevel = JSON.stringify((tokenizerJson as { decoder?: unknown }).decoder ?? null).includes('"ByteLevel"');

    const idOf = (key: string): number | null => {
      const s = tokenContent(config[key]);
      return s === null ? null : this.tok.token_to_id(s) ?? null;
    };
    const eos = idOf('eos_token');
    this.eosTokenIds = eos === null ? [] : [eos];
    this.bosTokenId = idOf('bos_token');
    this.padTokenId = idOf('pad_token');
  }

  /** Reads `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a model folder. */
  static load(modelDir: string): TextTokenizer {
    const tokPath = join(modelDir, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new ModelLoadError(`tokenizer file not found: ${tokPath}`);
    const tokenizerJson = readJson(tokPath, 'tokenizer file');
    if (!tokenizerJson || typeof tokenizerJson !== 'object') {
      throw new ModelLoadError(`tokenizer file ${tokPath} does not hold a JSON object`);
    }
    const cfgPath = join(modelDir, 'tokenizer_config.json');
    let config: TokenizerConfigJson = {};
    if (existsSync(cfgPath)) {
      const raw = readJson(cfgPath, 'tokenizer config');
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new ModelLoadError(`tokenizer config ${cfgPath} does not hold a JSON object`);
      }
      config = raw as TokenizerConfigJson;
    }
    return new TextTokenizer(tokenizerJson, config, tokPath);
  }

  /** Special tokens written in the text (e.g. <|image_pad|>) become their single ids. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  /**
   * A rendered chat prompt's ids, as transformers' processors tokenize it: with the
   * post-processor's special tokens (a BOS for Llama-style tokenizers; nothing for Qwen's),
   * unless the template already wrote the BOS token itself (no second BOS).
   */
  encodeChatPrompt(prompt: string): number[] {
    const bos = this.specialTokens.bos_token;
    const hasBos = typeof bos === 'string' && bos.length > 0 && prompt.startsWith(bos);
    return this.encode(prompt, { addSpecialTokens: !hasBos });
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecialTokens ?? false;
    // Filter here (Set lookup) rather than in the library (string scan per token); unknown ids are
    // dropped as the Rust tokenizers do, instead of becoming `null` tokens.
    const keep: number[] = [];
    for (const id of ids) {
      if (skip && this.specialTokenIds.has(id)) continue;
      if (this.tok.id_to_token(id) === undefined) continue;
      keep.push(id);
    }
    if (keep.length === 0) return ''; // the library throws on an empty list
    return this.tok.decode(keep, {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? this.cleanUp,
    });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /**
   * The raw bytes a token stands for: byte-level BPE tokens map back through
   * GPT-2's byte-to-character table, so a token holding half a UTF-8 character
   * gives its real bytes (for logprobs' `bytes`), not U+FFFD.
   */
  tokenBytes(id: number): Uint8Array {
    const t = this.tok.id_to_token(id);
    if (t === undefined) return new Uint8Array(0);
    if (!this.byteLevel || this.addedIds.has(id)) return Buffer.from(t, 'utf8');
    const out = new Uint8Array(t.length);
    let n = 0;
    for (const ch of t) {
      const b = UNICODE_TO_BYTE.get(ch.codePointAt(0)!);
      if (b === undefined) return Buffer.from(this.decode([id]), 'utf8');
      out[n++] = b;
    }
    return out.subarray(0, n);
  }

  isSpecial(id: number): boolean {
    return this.specialTokenIds.has(id);
  }
}
