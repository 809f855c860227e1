/**
 * Shared helpers of the xgrammar evaluation scripts (tools/xgrammar-eval/*): the module through
 * the project's loader, a handle on its WebAssembly memory (captured when the bundle
 * instantiates its module), capture of what the module prints (errors on stderr, where xgrammar
 * reports them before throwing only "Aborted()"; warnings on stdout), timing statistics, a seeded
 * RNG, bitmask helpers and the hardware line. Nothing here touches the network.
 */
import { availableParallelism, cpus as cpus_, totalmem } from 'node:os';
import { xgrammar, type XGrammarModule } from '../../src/structured/xgrammar.js';

export type XG = XGrammarModule;
export type CompiledGrammar = InstanceType<XG['CompiledGrammar']>;
export type GrammarMatcher = Awaited<ReturnType<XG['GrammarMatcher']['createGrammarMatcher']>>;
export type TokenizerInfo = InstanceType<XG['TokenizerInfo']>;
export type GrammarCompiler = Awaited<ReturnType<XG['GrammarCompiler']['createGrammarCompiler']>>;

let memory: WebAssembly.Memory | null = null;
let hooked = false;

/** Wraps WebAssembly.instantiate once so the module's linear memory can be read later. */
function hookInstantiate(): void {
  if (hooked) return;
  hooked = true;
  const wasm = (globalThis as unknown as { WebAssembly: { instantiate: (...a: unknown[]) => Promise<unknown> } }).WebAssembly;
  const original = wasm.instantiate;
  const wrapped = async function (this: unknown, ...args: unknown[]) {
    const result = await original.apply(this, args);
    const instance = (result as { instance?: WebAssembly.Instance }).instance ?? (result as WebAssembly.Instance);
    for (const value of Object.values(instance.exports ?? {})) {
      if (value instanceof WebAssembly.Memory) memory = value;
    }
    return result;
  };
  wasm.instantiate = wrapped;
}

/** The module, loaded by the project's loader (src/structured/xgrammar.ts). */
export function xg(): XG {
  hookInstantiate();
  return xgrammar();
}

/** Bytes of the module's WebAssembly linear memory (a high-water mark: it never shrinks); 0 before it is instantiated. */
export function wasmBytes(): number {
  return memory ? memory.buffer.byteLength : 0;
}

/** Whether the module's linear memory is a SharedArrayBuffer (it would be in a pthreads build). */
export function wasmMemoryShared(): boolean {
  return memory !== null && memory.buffer instanceof SharedArrayBuffer;
}

export const MB = 1024 * 1024;
export const mb = (b: number) => (b / MB).toFixed(1);
export const now = () => performance.now();

export function rssBytes(): number {
  return process.memoryUsage().rss;
}

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) { g(); g(); }
}

export interface Stats { n: number; median: number; p90: number; max: number; mean: number }

export function stats(xs: number[]): Stats {
  if (xs.length === 0) return { n: 0, median: NaN, p90: NaN, max: NaN, mean: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, median: q(0.5), p90: q(0.9), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

export function fmtStats(s: Stats, digits = 3): string {
  return `median ${s.median.toFixed(digits)} / p90 ${s.p90.toFixed(digits)} / max ${s.max.toFixed(digits)} ms (n=${s.n})`;
}

export { rng } from '../../test/helpers/rng.js';

/** Token ids whose bit is set in an xgrammar bitmask (bit i of word i>>5 = token i allowed). */
export function allowedIds(mask: Int32Array, vocabSize: number): number[] {
  const ids: number[] = [];
  for (let w = 0; w < mask.length; w++) {
    let word = mask[w]!;
    while (word !== 0) {
      const bit = 31 - Math.clz32(word & -word);
      const id = (w << 5) + bit;
      if (id < vocabSize) ids.push(id);
      word &= word - 1;
    }
  }
  return ids;
}

export function isAllowed(mask: Int32Array, id: number): boolean {
  return ((mask[id >> 5]! >>> (id & 31)) & 1) === 1;
}

export interface Captured<T> { ok: boolean; value?: T; error?: string; stderr: string; stdout: string }

/**
 * Runs fn with process.stderr.write and process.stdout.write intercepted. xgrammar's C++ errors
 * (XGRAMMAR_LOG(FATAL), XGRAMMAR_CHECK) are printed to stderr as "[FATAL] file:line: message" and
 * the call then throws a WebAssembly.RuntimeError whose message is only "Aborted(). Build with
 * -sASSERTIONS ..."; its warnings ("[WARNING] file:line: ...") are printed to stdout.
 */
export async function captureOutput<T>(fn: () => Promise<T> | T): Promise<Captured<T>> {
  const originalErr = process.stderr.write;
  const originalOut = process.stdout.write;
  let err = '';
  let out = '';
  const sink = (append: (t: string) => void) => (chunk: unknown, ...rest: unknown[]) => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    cb?.();
    return true;
  };
  (process.stderr as { write: unknown }).write = sink((t) => { err += t; });
  (process.stdout as { write: unknown }).write = sink((t) => { out += t; });
  try {
    const value = await fn();
    return { ok: true, value, stderr: err, stdout: out };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e), stderr: err, stdout: out };
  } finally {
    (process.stderr as { write: unknown }).write = originalErr;
    (process.stdout as { write: unknown }).write = originalOut;
  }
}

/** "[WARNING] path:line: message" lines, paths shortened to cpp/file. */
export function warnings(text: string): string[] {
  return [...new Set(text.split('\n').filter((l) => l.includes('[WARNING]')).map((l) => l.replace(/\/[^\s:]*\/(cpp\/[^\s:]+)/, '$1').trim()))];
}

/** The "[FATAL] path:line: message" line of captured stderr, path shortened to the file name. */
export function fatalMessage(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.includes('[FATAL]') || l.includes('Error')) ?? stderr.split('\n')[0] ?? '';
  return line.replace(/\/[^\s:]*\/(cpp\/[^\s:]+)/, '$1').trim();
}

/** CPU model and count (os.cpus() reads /proc/cpuinfo on Linux), Node version. */
export function hardware(): string {
  const cpus = cpus_();
  return `${cpus[0]?.model ?? 'unknown CPU'} x ${availableParallelism()} (nproc), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version} ${process.platform}/${process.arch}`;
}

export function log(msg: string): void {
  process.stderr.write(`[xgeval] ${msg}\n`);
}
