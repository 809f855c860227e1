import { JsonScanner, isJsonWhitespace } from './json.js';
import type { ParsedToolCall, ToolCallFormat, ToolCallParser, ToolCallStream, ToolStreamEvent } from './types.js';

/**
 * One state machine reads the output of all three formats, a character at a time, for both
 * `parse` and `stream`, so the two agree by construction.
 *
 * A call is a JSON object `{"name": <non-empty string>, <args key>: <object>}` in any key order,
 * the arguments key being optional (absent means `{}`); `"type"` may also appear (Llama 3.2 writes
 * `"type": "function"`); any other key, a repeated key, a name that is not a non-empty string or
 * arguments that are not an object make the call malformed. The arguments are reported as the
 * model wrote them, from their `{` to the matching `}`.
 *
 * - qwen25: `<tool_call>` ws `{...}` ws `</tool_call>`. The closing tag may be missing at the end.
 * - llama3: `<|python_tag|>` ws `{...}`, or `{...}` as the first non-whitespace of the output; more
 *   calls may follow, each after optional whitespace, an optional `;` and optional `<|python_tag|>`.
 * - mistral: `[TOOL_CALLS]` ws `[` ws `{...}` (ws `,` ws `{...}`)* ws `]`. A missing `]` at the end
 *   leaves the complete calls standing.
 *
 * A call attempt that turns out malformed (including one cut off by the end of the output) is
 * given back as its raw text (from its marker, or from its `{` when it follows another call's
 * separator) up to where it failed; reading resumes as content from the character
 * that broke it (or the one after, when that character completed something invalid such as an
 * unknown key). `parse` puts that raw text into the content. `stream` sends it as content only if
 * it had not yet announced the call (a `call` event); if it had, the events already sent stay as
 * they were and the raw text is dropped (the call's index is not reused).
 */

/** Where the machine reports what it found. */
interface Sink {
  content(text: string): void;
  callStart(name: string): void;
  args(text: string): void;
  callEnd(call: ParsedToolCall): void;
  callFail(raw: string, started: boolean): void;
}

interface Format {
  marker: string;
  argsKeys: readonly string[];
  /** llama3: a `{` before any other non-whitespace output begins a call. */
  bareStart: boolean;
  /** llama3: announce a call once its arguments begin (a bare JSON object with a "name" key may be no call at all). */
  startWithArgs: boolean;
}

const FORMATS: Record<ToolCallFormat, Format> = {
  qwen25: { marker: '<tool_call>', argsKeys: ['arguments'], bareStart: false, startWithArgs: false },
  llama3: { marker: '<|python_tag|>', argsKeys: ['parameters', 'arguments'], bareStart: true, startWithArgs: true },
  mistral: { marker: '[TOOL_CALLS]', argsKeys: ['arguments'], bareStart: false, startWithArgs: false },
};

const QWEN_END = '</tool_call>';

const enum Mode {
  /** Plain output, watching for the marker. */
  Content,
  /** After the marker (and, for mistral, the `[`): whitespace, then `{`. */
  Open,
  /** mistral, after `[TOOL_CALLS]`: whitespace, then `[`. */
  OpenArray,
  /** Inside a call object. */
  Object,
  /** After a call object: the optional syntax that closes it or leads to the next call. */
  After,
}

const enum Obj {
  KeyOrClose,
  Key,
  InKey,
  Colon,
  BeforeValue,
  InValue,
  CommaOrClose,
}

/** llama3 After states: before `;`, after `;`, inside `<|python_tag|>`, after it. */
const enum Sep {
  BeforeSemicolon,
  AfterSemicolon,
  Tag,
  AfterTag,
}

class CallMachine {
  private mode = Mode.Content;
  /** Content characters held back because they may begin the marker. */
  private hold = '';
  /** Raw text of the current call attempt, or of the syntax after a finished call. */
  private pending = '';
  /** llama3: nothing but whitespace has been read. */
  private atStart = true;

  // The current call object.
  private obj = Obj.KeyOrClose;
  private scanner: JsonScanner | null = null;
  private raw = '';
  private key = '';
  private seen = new Set<string>();
  private name: string | null = null;
  private argsText = '';
  private argsOpen = false;
  private argsDone = false;
  private started = false;

  // After a call.
  private afterPos = 0;
  private sep = Sep.BeforeSemicolon;

  constructor(
    private readonly f: Format,
    private readonly format: ToolCallFormat,
    private readonly sink: Sink,
  ) {}

  write(text: string): void {
    for (const c of text) this.step(c);
  }

  end(): void {
    switch (this.mode) {
      case Mode.Content:
        if (this.hold) this.sink.content(this.hold);
        this.hold = '';
        break;
      case Mode.Open:
      case Mode.OpenArray:
      case Mode.Object:
        this.fail();
        break;
      case Mode.After:
        // Whitespace, separators or a partial closing tag after complete calls: call syntax.
        this.pending = '';
        this.mode = Mode.Content;
        break;
    }
  }

  /** Inside a call: whitespace is held, `want` is held and moves on with `then`, anything else breaks the call. */
  private expect(c: string, want: string, then: () => void): void {
    if (isJsonWhitespace(c)) this.pending += c;
    else if (c === want) {
      this.pending += c;
      then();
    } else {
      this.fail();
      this.step(c);
    }
  }

  /** One character: a code point, or half a surrogate pair split between two deltas (harmless: no syntax is made of those). */
  private step(c: string): void {
    switch (this.mode) {
      case Mode.Content:
        return this.content(c);
      case Mode.Open:
        if (isJsonWhitespace(c)) {
          this.pending += c;
        } else if (c === '{') {
          this.beginObject(c);
        } else {
          this.fail();
          this.step(c);
        }
        return;
      case Mode.OpenArray:
        return this.expect(c, '[', () => (this.mode = Mode.Open));
      case Mode.Object:
        return this.object(c);
      case Mode.After:
        return this.after(c);
    }
  }

  private content(c: string): void {
    const marker = this.f.marker;
    if (this.f.bareStart && this.atStart && !this.hold) {
      if (isJsonWhitespace(c)) {
        this.sink.content(c);
        return;
      }
      if (c === '{') {
        this.atStart = false;
        this.beginObject(c);
        return;
      }
    }
    if (!isJsonWhitespace(c)) this.atStart = false;
    if (!this.hold && c !== marker[0]) {
      this.sink.content(c);
      return;
    }
    const held = this.hold + c;
    if (held === marker) {
      this.hold = '';
      this.pending = held;
      this.mode = this.format === 'mistral' ? Mode.OpenArray : Mode.Open;
      return;
    }
    // Keep the longest tail that may still begin the marker; the rest is content.
    let keep = Math.min(held.length, marker.length - 1);
    while (keep > 0 && !marker.startsWith(held.slice(held.length - keep))) keep--;
    if (keep < held.length) this.sink.content(held.slice(0, held.length - keep));
    this.hold = held.slice(held.length - keep);
  }

  private beginObject(c: string): void {
    this.pending += c;
    this.mode = Mode.Object;
    this.obj = Obj.KeyOrClose;
    this.scanner = null;
    this.seen.clear();
    this.name = null;
    this.argsText = '';
    this.argsOpen = false;
    this.argsDone = false;
    this.started = false;
  }

  /** The current attempt is malformed: its raw text goes back; reading resumes as content. */
  private fail(): void {
    const raw = this.pending;
    const started = this.started;
    this.pending = '';
    this.started = false;
    this.scanner = null;
    this.mode = Mode.Content;
    this.atStart = false;
    this.sink.callFail(raw, started);
  }

  private object(c: string): void {
    switch (this.obj) {
      case Obj.KeyOrClose:
      case Obj.Key:
        if (isJsonWhitespace(c)) {
          this.pending += c;
        } else if (c === '"') {
          this.pending += c;
          this.scanner = new JsonScanner();
          this.scanner.push(c);
          this.raw = c;
          this.obj = Obj.InKey;
        } else if (c === '}' && this.obj === Obj.KeyOrClose) {
          this.pending += c;
          this.fail(); // `{}`: no name
        } else {
          this.fail();
          this.step(c);
        }
        return;
      case Obj.InKey: {
        const r = this.scanner!.push(c);
        if (r === 'error') {
          this.fail();
          this.step(c);
          return;
        }
        this.pending += c;
        this.raw += c;
        if (r !== 'done') return;
        const key = JSON.parse(this.raw) as string;
        const known = key === 'name' || key === 'type' || this.f.argsKeys.includes(key);
        const repeated = this.seen.has(key) || (this.f.argsKeys.includes(key) && this.f.argsKeys.some((k) => this.seen.has(k)));
        if (!known || repeated) {
          this.fail();
          return;
        }
        this.seen.add(key);
        this.key = key;
        this.obj = Obj.Colon;
        return;
      }
      case Obj.Colon:
        return this.expect(c, ':', () => (this.obj = Obj.BeforeValue));
      case Obj.BeforeValue: {
        if (isJsonWhitespace(c)) {
          this.pending += c;
          return;
        }
        const isArgs = this.f.argsKeys.includes(this.key);
        if ((this.key === 'name' && c !== '"') || (isArgs && c !== '{')) {
          this.fail();
          this.step(c);
          return;
        }
        this.scanner = new JsonScanner();
        this.raw = '';
        this.obj = Obj.InValue;
        if (isArgs) {
          this.argsOpen = true;
          this.maybeStart();
        }
        return this.object(c);
      }
      case Obj.InValue: {
        const r = this.scanner!.push(c);
        if (r === 'error') {
          this.fail();
          this.step(c);
          return;
        }
        if (r === 'doneBefore') {
          this.obj = Obj.CommaOrClose;
          this.object(c);
          return;
        }
        this.pending += c;
        const isArgs = this.f.argsKeys.includes(this.key);
        if (isArgs) {
          this.argsText += c;
          if (this.started) this.sink.args(c);
        } else {
          this.raw += c;
        }
        if (r !== 'done') return;
        this.obj = Obj.CommaOrClose;
        if (isArgs) {
          this.argsDone = true;
        } else if (this.key === 'name') {
          const name = JSON.parse(this.raw) as string;
          if (!name) {
            this.fail();
            return;
          }
          this.name = name;
          this.maybeStart();
        }
        return;
      }
      case Obj.CommaOrClose:
        if (isJsonWhitespace(c)) {
          this.pending += c;
        } else if (c === ',') {
          this.pending += c;
          this.obj = Obj.Key;
        } else if (c === '}') {
          this.pending += c;
          this.closeObject();
        } else {
          this.fail();
          this.step(c);
        }
        return;
    }
  }

  /** Announces the call once its name is known (llama3: and its arguments have begun). */
  private maybeStart(closing = false): void {
    if (this.started || this.name === null) return;
    if (this.f.startWithArgs && !this.argsOpen && !closing) return;
    this.started = true;
    this.sink.callStart(this.name);
    if (this.argsText) this.sink.args(this.argsText);
  }

  private closeObject(): void {
    if (this.name === null) {
      this.fail();
      return;
    }
    this.maybeStart(true);
    if (!this.argsOpen) {
      this.argsText = '{}';
      this.sink.args(this.argsText);
    }
    this.sink.callEnd({ name: this.name, arguments: this.argsText });
    this.started = false;
    this.scanner = null;
    this.pending = '';
    this.mode = Mode.After;
    this.afterPos = 0;
    this.sep = Sep.BeforeSemicolon;
  }

  private after(c: string): void {
    if (this.format === 'qwen25') {
      if (this.afterPos === 0 && isJsonWhitespace(c)) {
        this.pending += c;
      } else if (c === QWEN_END[this.afterPos]) {
        this.pending += c;
        if (++this.afterPos === QWEN_END.length) {
          this.pending = '';
          this.mode = Mode.Content;
        }
      } else {
        this.resumeContent(c);
      }
      return;
    }
    if (this.format === 'mistral') {
      if (isJsonWhitespace(c)) {
        this.pending += c;
      } else if (c === ',' && this.afterPos === 0) {
        this.pending += c;
        this.afterPos = 1;
      } else if (c === '{' && this.afterPos === 1) {
        this.nextCall(c);
      } else if (c === ']' && this.afterPos === 0) {
        this.pending = '';
        this.mode = Mode.Content;
      } else {
        this.resumeContent(c);
      }
      return;
    }
    // llama3
    const tag = this.f.marker;
    switch (this.sep) {
      case Sep.BeforeSemicolon:
      case Sep.AfterSemicolon:
      case Sep.AfterTag:
        if (isJsonWhitespace(c)) {
          this.pending += c;
        } else if (c === ';' && this.sep === Sep.BeforeSemicolon) {
          this.pending += c;
          this.sep = Sep.AfterSemicolon;
        } else if (c === '{') {
          this.nextCall(c);
        } else if (c === tag[0] && this.sep !== Sep.AfterTag) {
          this.pending += c;
          this.sep = Sep.Tag;
          this.afterPos = 1;
        } else {
          this.resumeContent(c);
        }
        return;
      case Sep.Tag:
        if (c !== tag[this.afterPos]) {
          this.resumeContent(c);
          return;
        }
        this.pending += c;
        if (++this.afterPos === tag.length) this.sep = Sep.AfterTag;
        return;
    }
  }

  /** Another call follows: the separator before it is call syntax, not part of its raw text. */
  private nextCall(c: string): void {
    this.pending = '';
    this.beginObject(c);
  }

  /** What followed a call was not call syntax after all: read it again as content. */
  private resumeContent(c: string): void {
    const text = this.pending + c;
    this.pending = '';
    this.mode = Mode.Content;
    this.write(text);
  }
}

/** Joins consecutive events of the same kind (and call). */
function addEvent(events: ToolStreamEvent[], e: ToolStreamEvent): void {
  const last = events[events.length - 1];
  if (last && last.type === 'content' && e.type === 'content') last.text += e.text;
  else if (last && last.type === 'arguments' && e.type === 'arguments' && last.index === e.index) last.text += e.text;
  else events.push(e);
}

class StreamParser implements ToolCallStream {
  private events: ToolStreamEvent[] = [];
  private readonly machine: CallMachine;
  private index = -1;
  /** Content is trimmed like `parse`'s: leading whitespace dropped, trailing whitespace held until more text follows. */
  private contentStarted = false;
  private heldSpace = '';
  private ended = false;

  constructor(format: ToolCallFormat) {
    const content = (text: string) => this.content(text);
    this.machine = new CallMachine(FORMATS[format], format, {
      content,
      callStart: (name) => addEvent(this.events, { type: 'call', index: ++this.index, name }),
      args: (text) => addEvent(this.events, { type: 'arguments', index: this.index, text }),
      callEnd: () => {},
      callFail: (raw, started) => {
        if (!started) content(raw);
      },
    });
  }

  private content(text: string): void {
    if (!this.contentStarted) {
      let i = 0;
      while (i < text.length && isSpace(text[i]!)) i++;
      if (i === text.length) return;
      text = text.slice(i);
      this.contentStarted = true;
    }
    let j = text.length;
    while (j > 0 && isSpace(text[j - 1]!)) j--;
    if (j > 0) {
      addEvent(this.events, { type: 'content', text: this.heldSpace + text.slice(0, j) });
      this.heldSpace = '';
    }
    this.heldSpace += text.slice(j);
  }

  private take(): ToolStreamEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  push(delta: string): ToolStreamEvent[] {
    if (this.ended) throw new Error('tool call stream: push after end');
    this.machine.write(delta);
    return this.take();
  }

  end(): ToolStreamEvent[] {
    if (this.ended) return [];
    this.ended = true;
    this.machine.end();
    return this.take();
  }
}

/** The characters `String.prototype.trim` removes. */
function isSpace(c: string): boolean {
  return c.trim() === '';
}

function parseWhole(format: ToolCallFormat, text: string): { content: string | null; calls: ParsedToolCall[] } {
  let content = '';
  const calls: ParsedToolCall[] = [];
  const machine = new CallMachine(FORMATS[format], format, {
    content: (t) => (content += t),
    callStart: () => {},
    args: () => {},
    callEnd: (call) => calls.push(call),
    callFail: (raw) => (content += raw),
  });
  machine.write(text);
  machine.end();
  const trimmed = content.trim();
  return { content: trimmed ? trimmed : null, calls };
}

export function makeToolCallParser(format: ToolCallFormat): ToolCallParser {
  return {
    name: format,
    parse: (text) => parseWhole(format, text),
    stream: () => new StreamParser(format),
  };
}
