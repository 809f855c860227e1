/**
 * An incremental JSON syntax checker for one value, fed a character (UTF-16 code unit) at a time.
 * It tells when the value is complete without building it, so a call's arguments can be streamed
 * as the model writes them and still be known to be valid JSON (what `JSON.parse` accepts) when
 * they close.
 */

/**
 * - `more`: the character belongs to the value, which is not complete yet;
 * - `done`: the character completes the value;
 * - `doneBefore`: the value (a number) was already complete, the character is not part of it;
 * - `error`: the character cannot continue the value.
 */
export type ScanResult = 'more' | 'done' | 'doneBefore' | 'error';

const enum Mode {
  Value,
  ArrayFirst,
  ObjectFirst,
  ObjectKey,
  Colon,
  AfterValue,
  String,
  Escape,
  Unicode,
  Number,
  Literal,
  Done,
  Failed,
}

const enum Num {
  Minus,
  Zero,
  Int,
  Dot,
  Frac,
  Exp,
  ExpSign,
  ExpDigits,
}

export function isJsonWhitespace(c: string): boolean {
  return c === ' ' || c === '\n' || c === '\r' || c === '\t';
}

const isDigit = (c: string) => c >= '0' && c <= '9';
const isHex = (c: string) => isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

export class JsonScanner {
  private mode: Mode = Mode.Value;
  private readonly stack: string[] = [];
  private stringIsKey = false;
  private hexDigits = 0;
  private num: Num = Num.Int;
  private literal = '';
  private literalPos = 0;
  /** Whitespace before the value is accepted only when asked (the callers skip it themselves). */
  private readonly leadingWhitespace: boolean;

  constructor(opts: { leadingWhitespace?: boolean } = {}) {
    this.leadingWhitespace = opts.leadingWhitespace ?? false;
  }

  /** Whether the value is complete (or, for a bare number, would be if the text ended here). */
  complete(): boolean {
    if (this.mode === Mode.Done) return true;
    return this.mode === Mode.Number && this.stack.length === 0 && (this.num === Num.Zero || this.num === Num.Int || this.num === Num.Frac || this.num === Num.ExpDigits);
  }

  push(c: string): ScanResult {
    for (;;) {
      switch (this.mode) {
        case Mode.Done:
        case Mode.Failed:
          return 'error';
        case Mode.ArrayFirst:
          if (isJsonWhitespace(c)) return 'more';
          if (c === ']') {
            this.stack.pop();
            return this.afterValue();
          }
          this.mode = Mode.Value;
          continue;
        case Mode.Value:
          if (isJsonWhitespace(c) && (this.leadingWhitespace || this.stack.length > 0)) return 'more';
          if (c === '{') {
            this.stack.push('{');
            this.mode = Mode.ObjectFirst;
            return 'more';
          }
          if (c === '[') {
            this.stack.push('[');
            this.mode = Mode.ArrayFirst;
            return 'more';
          }
          if (c === '"') {
            this.stringIsKey = false;
            this.mode = Mode.String;
            return 'more';
          }
          if (c === '-') {
            this.num = Num.Minus;
            this.mode = Mode.Number;
            return 'more';
          }
          if (isDigit(c)) {
            this.num = c === '0' ? Num.Zero : Num.Int;
            this.mode = Mode.Number;
            return 'more';
          }
          if (c === 't' || c === 'f' || c === 'n') {
            this.literal = c === 't' ? 'true' : c === 'f' ? 'false' : 'null';
            this.literalPos = 1;
            this.mode = Mode.Literal;
            return 'more';
          }
          return this.fail();
        case Mode.ObjectFirst:
        case Mode.ObjectKey:
          if (isJsonWhitespace(c)) return 'more';
          if (c === '"') {
            this.stringIsKey = true;
            this.mode = Mode.String;
            return 'more';
          }
          if (c === '}' && this.mode === Mode.ObjectFirst) {
            this.stack.pop();
            return this.afterValue();
          }
          return this.fail();
        case Mode.Colon:
          if (isJsonWhitespace(c)) return 'more';
          if (c === ':') {
            this.mode = Mode.Value;
            return 'more';
          }
          return this.fail();
        case Mode.AfterValue: {
          if (isJsonWhitespace(c)) return 'more';
          const top = this.stack[this.stack.length - 1];
          if (c === ',') {
            this.mode = top === '{' ? Mode.ObjectKey : Mode.Value;
            return 'more';
          }
          if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
            this.stack.pop();
            return this.afterValue();
          }
          return this.fail();
        }
        case Mode.String:
          if (c === '"') {
            if (this.stringIsKey) {
              this.mode = Mode.Colon;
              return 'more';
            }
            return this.afterValue();
          }
          if (c === '\\') {
            this.mode = Mode.Escape;
            return 'more';
          }
          if (c.charCodeAt(0) < 0x20) return this.fail();
          return 'more';
        case Mode.Escape:
          if (c === 'u') {
            this.hexDigits = 0;
            this.mode = Mode.Unicode;
            return 'more';
          }
          if ('"\\/bfnrt'.includes(c)) {
            this.mode = Mode.String;
            return 'more';
          }
          return this.fail();
        case Mode.Unicode:
          if (!isHex(c)) return this.fail();
          if (++this.hexDigits === 4) this.mode = Mode.String;
          return 'more';
        case Mode.Literal:
          if (c !== this.literal[this.literalPos]) return this.fail();
          if (++this.literalPos === this.literal.length) return this.afterValue();
          return 'more';
        case Mode.Number:
          switch (this.num) {
            case Num.Minus:
              if (!isDigit(c)) return this.fail();
              this.num = c === '0' ? Num.Zero : Num.Int;
              return 'more';
            case Num.Dot:
              if (!isDigit(c)) return this.fail();
              this.num = Num.Frac;
              return 'more';
            case Num.Exp:
              if (c === '+' || c === '-') {
                this.num = Num.ExpSign;
                return 'more';
              }
              if (!isDigit(c)) return this.fail();
              this.num = Num.ExpDigits;
              return 'more';
            case Num.ExpSign:
              if (!isDigit(c)) return this.fail();
              this.num = Num.ExpDigits;
              return 'more';
            default:
              // Zero, Int, Frac or ExpDigits: a complete number, which may go on.
              if (isDigit(c) && this.num !== Num.Zero) return 'more';
              if (c === '.' && (this.num === Num.Zero || this.num === Num.Int)) {
                this.num = Num.Dot;
                return 'more';
              }
              if ((c === 'e' || c === 'E') && this.num !== Num.ExpDigits) {
                this.num = Num.Exp;
                return 'more';
              }
          }
          // The number ended before c.
          if (this.stack.length === 0) {
            this.mode = Mode.Done;
            return 'doneBefore';
          }
          this.mode = Mode.AfterValue;
          continue;
      }
    }
  }

  private afterValue(): ScanResult {
    if (this.stack.length === 0) {
      this.mode = Mode.Done;
      return 'done';
    }
    this.mode = Mode.AfterValue;
    return 'more';
  }

  private fail(): ScanResult {
    this.mode = Mode.Failed;
    return 'error';
  }
}
