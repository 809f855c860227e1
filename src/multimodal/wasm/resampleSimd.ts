import { resampleWasmBase64 } from './resampleWasm.js';

/** Fixed-point coefficients for one axis: output i reads `bounds[2i+1]` inputs from `bounds[2i]`. */
export interface AxisCoeffs {
  ksize: number;
  bounds: Int32Array;
  kk: Int32Array;
}

interface Kernels {
  vertical(src: number, W: number, outH: number, bounds: number, kk: number, ksize: number, dst: number): void;
  horizontal(src: number, inRow: number, rows: number, outW: number, bounds: number, kk: number, ksize: number, dst: number): void;
}

/** Bytes after every buffer, for the kernels' whole-vector reads and writes. */
const PAD = 16;
const PAGE = 65536;
/** Above this the module would keep too much memory: such images take the JS path. */
const MAX_MEMORY = 160 << 20;

/**
 * The two resampling passes in WebAssembly SIMD (resample.wat), 3-6x faster than the
 * JS loops. The module's memory is reused from call to call (it grows to the
 * largest image seen, up to MAX_MEMORY).
 */
export class SimdResampler {
  private constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly k: Kernels,
  ) {}

  /** null where WebAssembly SIMD is missing. */
  static create(): SimdResampler | null {
    try {
      const bytes = Buffer.from(resampleWasmBase64, 'base64');
      if (!WebAssembly.validate(bytes)) return null;
      const memory = new WebAssembly.Memory({ initial: 1 });
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
      return new SimdResampler(memory, instance.exports as unknown as Kernels);
    } catch {
      return null;
    }
  }

  /**
   * Resizes `rows` source rows of `inW` RGB pixels starting at `src[srcOffset]`:
   * horizontally to `outW` (if `horiz`), then vertically to `outH` rows (if `vert`,
   * whose bounds count from the first given row). Writes `out`; false if the image
   * is too large for this path.
   */
  resize(
    src: Uint8Array, srcOffset: number, inW: number, rows: number,
    horiz: AxisCoeffs | null, vert: AxisCoeffs | null, outW: number, outH: number, out: Uint8Array,
  ): boolean {
    const inBytes = inW * 3 * rows;
    const midBytes = horiz ? outW * 3 * rows : 0;
    const outBytes = outW * 3 * outH;
    const tables = (c: AxisCoeffs | null) => (c ? (c.bounds.length + c.kk.length) * 4 : 0);
    const align = (n: number) => (n + PAD + 15) & ~15;
    const srcAt = 0;
    const midAt = srcAt + align(inBytes);
    const outAt = midAt + align(midBytes);
    const tabAt = outAt + align(outBytes);
    const total = tabAt + tables(horiz) + tables(vert);
    if (total > MAX_MEMORY) return false;
    const have = this.memory.buffer.byteLength;
    if (total > have) this.memory.grow(Math.ceil((total - have) / PAGE));
    const heap = new Uint8Array(this.memory.buffer);
    heap.set(src.subarray(srcOffset, srcOffset + inBytes), srcAt);

    let t = tabAt;
    const put = (a: Int32Array) => {
      new Int32Array(this.memory.buffer, t, a.length).set(a);
      const at = t;
      t += a.length * 4;
      return at;
    };
    let cur = srcAt;
    if (horiz) {
      const bounds = put(horiz.bounds);
      const kk = put(horiz.kk);
      const dst = vert ? midAt : outAt;
      this.k.horizontal(srcAt, inW * 3, rows, outW, bounds, kk, horiz.ksize, dst);
      cur = dst;
    }
    if (vert) {
      const bounds = put(vert.bounds);
      const kk = put(vert.kk);
      this.k.vertical(cur, outW * 3, outH, bounds, kk, vert.ksize, outAt);
    }
    out.set(new Uint8Array(this.memory.buffer, outAt, outBytes));
    return true;
  }
}
