export interface StopResult {
  /** Text that is safe to send now. */
  text: string;
  /** The stop string that ended generation, or null. */
  stopped: string | null;
}

/**
 * Applies OpenAI `stop` strings to streamed text. Text that could be the beginning of a stop
 * string is held back until it is ruled out, so a client never receives part of a stop string;
 * when a stop string appears, the text before it is returned and the stop string is not.
 * Each push costs O(new text + held text) per stop string; held text is shorter than the
 * longest stop string.
 */
export class StopStringMatcher {
  private readonly stops: string[];
  private held = '';
  private done: string | null = null;

  constructor(
    stops: readonly string[],
    private readonly includeStopString = false,
  ) {
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
  }

  get stopped(): string | null {
    return this.done;
  }

  push(piece: string): StopResult {
    if (this.done !== null) return { text: '', stopped: this.done };
    if (this.stops.length === 0) return { text: piece, stopped: null };
    const buf = this.held + piece;
    // Earliest occurrence wins; at equal positions, the first stop string listed.
    let at = -1;
    let which = '';
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      this.done = which;
      this.held = '';
      return { text: buf.slice(0, this.includeStopString ? at + which.length : at), stopped: which };
    }
    const hold = this.partialMatchLength(buf);
    this.held = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: null };
  }

  /** End of generation without a stop string: release the held text. */
  flush(): string {
    const out = this.done === null ? this.held : '';
    this.held = '';
    return out;
  }

  /** Longest suffix of buf that is a proper prefix of some stop string. */
  private partialMatchLength(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
