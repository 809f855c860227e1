/** Small helpers of the serving benchmark: seeded randomness, statistics, logging. */

export function log(msg: string): void {
  process.stderr.write(`[bench:serve ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** Exponential with the given rate (Poisson inter-arrival time). */
  exp(rate: number): number {
    return -Math.log(1 - this.next()) / rate;
  }
  /** A derived generator (independent stream for a sub-task). */
  fork(salt: number): Rng {
    return new Rng(Math.imul((this.next() * 4294967296) >>> 0, 0x85ebca6b) ^ Math.imul(salt + 1, 0xc2b2ae35));
  }
}

/** Percentile with linear interpolation between closest ranks (numpy's default). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return s[lo]! + (s[hi]! - s[lo]!) * (r - lo);
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export interface Dist {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  n: number;
}

export function dist(xs: readonly number[]): Dist {
  return { mean: mean(xs), p50: percentile(xs, 50), p90: percentile(xs, 90), p99: percentile(xs, 99), max: xs.length ? Math.max(...xs) : NaN, n: xs.length };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** Rows of [label, value] printed as an aligned two-column block. */
export function printBlock(title: string, rows: Array<[string, string]>, width = 50): void {
  const line = (s: string) => process.stdout.write(s + '\n');
  const bar = Math.max(0, width - title.length - 2);
  line(`${'-'.repeat(Math.floor(bar / 2))} ${title} ${'-'.repeat(Math.ceil(bar / 2))}`);
  const w = Math.max(...rows.map(([a]) => a.length), 40);
  for (const [a, v] of rows) line(`${(a + ':').padEnd(w + 2)}${v}`);
}
