import { IrisError } from '../errors.js';

/**
 * What one decoder layer keeps per token, as its family describes it. `full`: K and V of
 * every past token, `width` floats each (kv heads * head dim). `cross`: nothing per token;
 * the layer attends to its sequence's image states, which live with the sequence (width 0).
 */
export interface KvLayerSpec {
  kind: 'full' | 'cross';
  width: number;
}

/** Bytes of KV cache one token takes over all layers. */
export function kvBytesPerToken(layers: KvLayerSpec[]): number {
  return layers.reduce((a, l) => a + 2 * l.width * 4, 0);
}

/**
 * The KV cache as a pool of fixed-size pages owned by the engine: per layer one
 * Float32Array [numPages, pageSize, width] for K and one for V, fed to the graph as
 * ordinary inputs (ONNX Runtime reads them in place). Page 0 is a never-allocated
 * null page that pads block tables.
 */
export class KvPagePool {
  readonly k: Float32Array[];
  readonly v: Float32Array[];
  private readonly free: number[] = [];

  constructor(
    readonly layers: KvLayerSpec[],
    readonly numPages: number,
    readonly pageSize: number,
  ) {
    this.k = layers.map((l) => new Float32Array(numPages * pageSize * l.width));
    this.v = layers.map((l) => new Float32Array(numPages * pageSize * l.width));
    for (let p = numPages - 1; p >= 1; p--) this.free.push(p);
  }

  get numLayers(): number {
    return this.layers.length;
  }

  get freePages(): number {
    return this.free.length;
  }

  get usablePages(): number {
    return this.numPages - 1;
  }

  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  /** Takes `n` pages, or throws when the pool is exhausted (callers check freePages first). */
  alloc(n: number): number[] {
    if (n > this.free.length) throw new IrisError(`KV cache exhausted: need ${n} pages, ${this.free.length} free`, { status: 503, type: 'ServiceUnavailableError' });
    return this.free.splice(this.free.length - n, n);
  }

  release(pages: number[]): void {
    for (const p of pages) this.free.push(p);
  }

  /** Copies the first `len` token slots of page `src` into page `dst` (copy-on-write of a shared page). */
  copyPage(src: number, dst: number, len: number): void {
    this.layers.forEach(({ width: W }, l) => {
      const a = src * this.pageSize * W;
      const b = dst * this.pageSize * W;
      this.k[l]!.copyWithin(b, a, a + len * W);
      this.v[l]!.copyWithin(b, a, a + len * W);
    });
  }

  /**
   * Copies `count` new tokens' K/V rows, starting at row `srcRow` of a graph
   * output [rows, width], into a sequence's pages at token positions start.. .
   */
  write(layer: number, kNew: Float32Array, vNew: Float32Array, srcRow: number, count: number, pages: number[], start: number): void {
    const W = this.layers[layer]!.width;
    const kDst = this.k[layer]!;
    const vDst = this.v[layer]!;
    for (let s = 0; s < count; s++) {
      const posIdx = start + s;
      const slot = pages[Math.floor(posIdx / this.pageSize)]! * this.pageSize + (posIdx % this.pageSize);
      const src = (srcRow + s) * W;
      kDst.set(kNew.subarray(src, src + W), slot * W);
      vDst.set(vNew.subarray(src, src + W), slot * W);
    }
  }
}
