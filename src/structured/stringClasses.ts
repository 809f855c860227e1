/**
 * Character classes of JSON string content. xgrammar 0.1.27 matches character classes precisely
 * on ASCII only, and its JSON-schema grammar lets bounded strings hold raw control characters.
 */

/** ASCII characters a JSON string cannot hold unescaped. */
const UNSAFE: [number, number][] = [
  [0x00, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
];
const ASCII: [number, number][] = [[0, 0x7f]];

const ESCAPES: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, f: 0x0c, v: 0x0b, b: 0x08, a: 0x07, e: 0x1b, '0': 0 };

/** Reads one (possibly escaped) character of a character class at i: [code point, next index]. */
function classChar(text: string, i: number): [number, number] {
  if (text[i] !== '\\') {
    const cp = text.codePointAt(i)!;
    return [cp, i + String.fromCodePoint(cp).length];
  }
  const e = text[i + 1]!;
  const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
  if (hexLen) return [parseInt(text.slice(i + 2, i + 2 + hexLen), 16), i + 2 + hexLen];
  if (e in ESCAPES) return [ESCAPES[e]!, i + 2];
  const cp = text.codePointAt(i + 1)!;
  return [cp, i + 1 + String.fromCodePoint(cp).length];
}

function classText(ranges: [number, number][]): string {
  const ch = (c: number) => (c >= 0x20 && c < 0x7f && !'\\]-^["'.includes(String.fromCharCode(c)) ? String.fromCharCode(c) : c > 0xffff ? `\\U${c.toString(16).padStart(8, '0')}` : c > 0xff ? `\\u${c.toString(16).padStart(4, '0')}` : `\\x${c.toString(16).padStart(2, '0')}`);
  return ranges.map(([a, b]) => (a === b ? ch(a) : `${ch(a)}-${ch(b)}`)).join('');
}

/** The parts of `ranges` inside `keep` (both lists of inclusive ranges). */
function intersect(ranges: [number, number][], keep: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of ranges) for (const [c, d] of keep) if (Math.max(a, c) <= Math.min(b, d)) out.push([Math.max(a, c), Math.min(b, d)]);
  return out;
}

/** The parts of `ranges` outside `cut`. */
function subtract(ranges: [number, number][], cut: [number, number][]): [number, number][] {
  let out = ranges;
  for (const [ca, cb] of cut) {
    const next: [number, number][] = [];
    for (const [a, b] of out) {
      if (cb < a || ca > b) next.push([a, b]);
      else {
        if (a < ca) next.push([a, ca - 1]);
        if (b > cb) next.push([cb + 1, b]);
      }
    }
    out = next;
  }
  return out;
}

/**
 * Narrows the character classes that stand for free string content to characters JSON allows
 * unescaped in a string. xgrammar 0.1.27 matches character classes precisely on ASCII only: a
 * negated class cannot exclude non-ASCII characters (it warns and ignores them) and a positive
 * class with non-ASCII ranges admits the wrong characters (`[\u4e00-\u9fff]` takes `"`). So:
 * - a negated class also excludes control characters, `"` and `\`;
 * - a positive class holding control or non-ASCII characters keeps its ASCII part minus those,
 *   and takes any non-ASCII character if it had some (`[^\x00-\x7f]`, which xgrammar matches).
 * Classes of ASCII characters only, such as those after a backslash, are left alone.
 */
export function narrowStringClasses(ebnf: string): string {
  let out = '';
  let i = 0;
  while (i < ebnf.length) {
    const c = ebnf[i]!;
    if (c === '"') {
      // A string literal: copied through, escapes included.
      let j = i + 1;
      while (j < ebnf.length && ebnf[j] !== '"') j += ebnf[j] === '\\' ? 2 : 1;
      out += ebnf.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c !== '[') {
      out += c;
      i++;
      continue;
    }
    let j = i + 1;
    const negated = ebnf[j] === '^';
    if (negated) j++;
    const items: [number, number][] = [];
    while (j < ebnf.length && ebnf[j] !== ']') {
      const [a, k] = classChar(ebnf, j);
      j = k;
      if (ebnf[j] === '-' && ebnf[j + 1] !== ']') {
        const [b, k2] = classChar(ebnf, j + 1);
        items.push([a, b]);
        j = k2;
      } else {
        items.push([a, a]);
      }
    }
    const original = ebnf.slice(i, j + 1);
    i = j + 1;
    if (negated) {
      out += `[^${classText([...items, ...UNSAFE])}]`;
      continue;
    }
    const nonAscii = items.some(([, b]) => b > 0x7f);
    if (!nonAscii && !items.some(([a]) => a <= 0x1f)) {
      out += original;
      continue;
    }
    const ascii = subtract(intersect(items, ASCII), UNSAFE);
    const asciiClass = ascii.length ? `[${classText(ascii)}]` : null;
    if (!nonAscii) out += asciiClass ?? original;
    else out += asciiClass ? `(${asciiClass} | [^\\x00-\\x7f])` : '[^\\x00-\\x7f]';
  }
  return out;
}

