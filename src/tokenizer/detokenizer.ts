/**
 * Streaming detokenization: token ids in one at a time, finished text out.
 *
 * Like vLLM's detokenize_incrementally, each step decodes only a short window of recent tokens
 * (starting at a point known to be a character boundary, so context such as a leading-space rule
 * is the same every time) and emits what that window adds beyond the text already emitted.
 * A byte-level BPE token can end inside a UTF-8 character; the decoder then shows U+FFFD at the
 * end. Only that last character can still change, so everything before it is emitted and it is
 * held until a later token completes it (or proves it invalid). Truly invalid bytes therefore
 * come out as U+FFFD as soon as more tokens follow, and the concatenated output equals a one-shot
 * decode of all ids.
 */

export { StopStringMatcher, type StopResult } from './stopStrings.js';

/** What the detokenizer needs from a tokenizer (TextTokenizer fits). */
export interface DetokenizerBackend {
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean }): string;
  readonly specialTokenIds: ReadonlySet<number>;
}

export interface DetokenizerOptions {
  /** Default true, as the OpenAI API returns text. */
  skipSpecialTokens?: boolean;
}

const REPLACEMENT = '\uFFFD';
/** Window length (tokens) that triggers a forced slide during a long run of U+FFFD. */
const MAX_WINDOW = 8;
/** Tokens kept on a forced slide: an unfinished UTF-8 character has at most 3 bytes, 1+ per token. */
const KEEP_ON_SLIDE = 4;

export class IncrementalDetokenizer {
  private readonly skipSpecial: boolean;
  /** Tokens from the window start (a character boundary) to now. */
  private window: number[] = [];
  /** Window tokens before this index were all decoded to final text at the last clean step. */
  private read = 0;
  /** UTF-16 length of decode(window) already emitted. */
  private emitted = 0;
  private count = 0;

  constructor(
    private readonly tokenizer: DetokenizerBackend,
    opts: DetokenizerOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecialTokens ?? true;
  }

  /** Number of tokens pushed (skipped special tokens included). */
  get tokenCount(): number {
    return this.count;
  }

  /** Adds one token; returns the text it finished (often '', never a broken character). */
  push(id: number): string {
    this.count++;
    if (this.skipSpecial && this.tokenizer.specialTokenIds.has(id)) return '';
    this.window.push(id);
    const text = this.decodeWindow();
    const pending = text.endsWith(REPLACEMENT);
    const stable = pending ? text.length - 1 : text.length;
    let out = '';
    if (stable > this.emitted) {
      out = text.slice(this.emitted, stable);
      this.emitted = stable;
    }
    if (!pending) {
      // All text is final: the next window starts at the previous read point (kept as context).
      this.window = this.window.slice(this.read);
      this.read = this.window.length;
      this.emitted = this.decodeWindow().length;
    } else if (this.window.length > MAX_WINDOW) {
      // A long run of invalid bytes: everything but the last character is out; keep only the
      // tokens that may hold an unfinished character so the window stays short.
      this.window = this.window.slice(-KEEP_ON_SLIDE);
      this.read = 0;
      const t = this.decodeWindow();
      this.emitted = t.endsWith(REPLACEMENT) ? t.length - 1 : t.length;
    }
    return out;
  }

  pushMany(ids: Iterable<number>): string {
    let out = '';
    for (const id of ids) out += this.push(id);
    return out;
  }

  /** End of generation: returns whatever is held (an unfinished character becomes U+FFFD). */
  flush(): string {
    const out = this.decodeWindow().slice(this.emitted);
    this.window = [];
    this.read = 0;
    this.emitted = 0;
    return out;
  }

  private decodeWindow(): string {
    // Cleanup of tokenization spaces rewrites earlier text, so it cannot apply to a stream.
    return this.tokenizer.decode(this.window, { skipSpecialTokens: false, cleanUpTokenizationSpaces: false });
  }
}
