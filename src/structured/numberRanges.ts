/**
 * Grammars (EBNF) for numbers within bounds, as JSON writes them: xgrammar 0.1.27's own ranges
 * admit values outside them (integers) or text that is not JSON (other numbers).
 */

/** Integer bounds (inclusive, null for none) from JSON-schema keywords, drafts 4 and 6+. */
export function integerBounds(b: Record<string, unknown>): [bigint | null, bigint | null] {
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  let lo: bigint | null = null;
  let hi: bigint | null = null;
  const raise = (v: bigint) => (lo = lo === null || v > lo ? v : lo);
  const lower = (v: bigint) => (hi = hi === null || v < hi ? v : hi);
  if (finite(b.minimum)) {
    const excl = b.exclusiveMinimum === true;
    const m = Math.ceil(b.minimum);
    raise(BigInt(excl && m === b.minimum ? m + 1 : m));
  }
  if (finite(b.maximum)) {
    const excl = b.exclusiveMaximum === true;
    const m = Math.floor(b.maximum);
    lower(BigInt(excl && m === b.maximum ? m - 1 : m));
  }
  if (finite(b.exclusiveMinimum)) raise(BigInt(Math.floor(b.exclusiveMinimum) + 1));
  if (finite(b.exclusiveMaximum)) lower(BigInt(Math.ceil(b.exclusiveMaximum) - 1));
  return [lo, hi];
}

type Piece = string; // an EBNF element: "7", [3-5], [0-9] or [0-9]*

const digitClass = (a: number, b: number): Piece => (a === b ? `"${a}"` : `[${a}-${b}]`);

/** Digit strings of one length from x to y (x <= y, same length; no leading-zero rule here). */
function sameLength(x: string, y: string): Piece[][] {
  if (x.length === 0) return [[]];
  if (x[0] === y[0]) return sameLength(x.slice(1), y.slice(1)).map((seq) => [`"${x[0]}"`, ...seq]);
  const rest = x.length - 1;
  const lo = Number(x[0]);
  const hi = Number(y[0]);
  const lowFull = /^0*$/.test(x.slice(1));
  const highFull = /^9*$/.test(y.slice(1));
  const out: Piece[][] = [];
  let from = lo;
  let to = hi;
  if (!lowFull) {
    out.push(...sameLength(x.slice(1), '9'.repeat(rest)).map((seq) => [`"${x[0]}"`, ...seq]));
    from = lo + 1;
  }
  if (!highFull) {
    out.push(...sameLength('0'.repeat(rest), y.slice(1)).map((seq) => [`"${y[0]}"`, ...seq]));
    to = hi - 1;
  }
  if (from <= to) out.push([digitClass(from, to), ...Array<Piece>(rest).fill('[0-9]')]);
  return out;
}

/** Non-negative integers from a to b (b null: no upper bound), as JSON writes them. */
function naturals(a: bigint, b: bigint | null): Piece[][] {
  const out: Piece[][] = [];
  const la = a.toString().length;
  const lb = b === null ? la : b.toString().length;
  for (let len = la; len <= lb; len++) {
    const x = len === la ? a.toString() : '1' + '0'.repeat(len - 1);
    const y = b !== null && len === lb ? b.toString() : '9'.repeat(len);
    out.push(...sameLength(x, y));
  }
  if (b === null) out.push(['[1-9]', ...Array<Piece>(la).fill('[0-9]'), '[0-9]*']);
  return out;
}

/** EBNF for the integers in [lo, hi] (null: unbounded on that side), without "-0". */
export function integerRangeEBNF(lo: bigint | null, hi: bigint | null): string {
  const alts: Piece[][] = [];
  if (hi === null || hi >= 0n) alts.push(...naturals(lo !== null && lo > 0n ? lo : 0n, hi));
  if (lo === null || lo < 0n) {
    const from = hi !== null && hi < 0n ? -hi : 1n;
    alts.push(...naturals(from, lo === null ? null : -lo).map((seq) => ['"-"', ...seq]));
  }
  return alts.map((seq) => `(${seq.join(' ')})`).join(' | ');
}

/** A bound of a range: a whole number, and whether it is itself excluded. */
export interface Bound {
  v: bigint;
  excl: boolean;
}

const FRACTION = '("." [0-9]+)';
const ZERO_FRACTION = '("." "0"+)';
const NONZERO_FRACTION = '("." [0-9]* [1-9] [0-9]*)';

/** Non-negative numbers (magnitudes) from a to b, each bound included or not, as alternatives. */
function magnitudes(a: Bound, b: Bound | null): string[] {
  const alts: string[] = [];
  const ipLo = a.excl ? a.v + 1n : a.v;
  const ipHi = b === null ? null : b.v - 1n;
  // The optional fraction goes inside each alternative: xgrammar 0.1.27 mis-matches alternatives
  // of different lengths followed by an optional part (it accepts "0788").
  if (ipHi === null || ipLo <= ipHi) alts.push(...integerRangeEBNF(ipLo, ipHi).split(' | ').map((a) => `(${a} ${FRACTION}?)`));
  if (a.excl && (b === null || a.v < b.v)) alts.push(`("${a.v}" ${NONZERO_FRACTION})`);
  if (b !== null && !b.excl && (b.v > a.v || (b.v === a.v && !a.excl))) alts.push(`("${b.v}" ${ZERO_FRACTION}?)`);
  return alts;
}

/**
 * EBNF for the JSON numbers (without exponent) from lo to hi, whose bounds are whole numbers
 * (null: unbounded on that side).
 */
export function numberRangeEBNF(lo: Bound | null, hi: Bound | null): string {
  const alts: string[] = [];
  // Non-negative values.
  if (hi === null || hi.v > 0n || (hi.v === 0n && !hi.excl)) {
    const a: Bound = lo === null || lo.v < 0n ? { v: 0n, excl: false } : lo;
    alts.push(...magnitudes(a, hi));
  }
  // Negative values, by magnitude: below -hi (or above 0), up to -lo.
  if (lo === null || lo.v < 0n) {
    const a: Bound = hi !== null && hi.v < 0n ? { v: -hi.v, excl: hi.excl } : { v: 0n, excl: true };
    const b: Bound | null = lo === null ? null : { v: -lo.v, excl: lo.excl };
    alts.push(...magnitudes(a, b).map((m) => `("-" ${m})`));
  }
  if (!alts.length) throw new Error('the range holds no number');
  return alts.join(' | ');
}
