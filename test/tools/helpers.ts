import type { ParsedToolCall, ToolCallParser, ToolStreamEvent } from '../../src/tools/types.js';

import { rng } from '../helpers/rng.js';

export { rng };

/** Feeds the chunks one by one; returns every event in order (as emitted). */
export function streamEvents(parser: ToolCallParser, chunks: string[]): ToolStreamEvent[] {
  const s = parser.stream();
  const events: ToolStreamEvent[] = [];
  for (const c of chunks) events.push(...s.push(c));
  events.push(...s.end());
  return events;
}

/** What a client rebuilds from the events: the content and each call's name and arguments. */
export function collect(events: ToolStreamEvent[]): { content: string | null; calls: ParsedToolCall[] } {
  let content = '';
  const calls: ParsedToolCall[] = [];
  for (const e of events) {
    if (e.type === 'content') content += e.text;
    else if (e.type === 'call') {
      if (e.index !== calls.length) throw new Error(`call index ${e.index}, expected ${calls.length}`);
      calls.push({ name: e.name, arguments: '' });
    } else {
      const call = calls[e.index];
      if (!call || e.index !== calls.length - 1) throw new Error(`arguments for call ${e.index} while call ${calls.length - 1} is open`);
      call.arguments += e.text;
    }
  }
  return { content: content === '' ? null : content, calls };
}

/** Splits a string at every UTF-16 code unit, at every code point, and at random places. */
export function chunkings(text: string, seed: number, random = 12): string[][] {
  const out: string[][] = [text.split(''), Array.from(text), [text]];
  const r = rng(seed);
  for (let k = 0; k < random; k++) {
    const chunks: string[] = [];
    let i = 0;
    while (i < text.length) {
      const n = 1 + Math.floor(r() * (r() < 0.2 ? 24 : 5));
      chunks.push(text.slice(i, i + n));
      i += n;
    }
    out.push(chunks);
  }
  return out;
}
