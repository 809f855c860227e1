import { IrisError } from '../errors.js';

/**
 * What one decoder layer keeps per token, as its family describes it. `full`: K and V of
 * every past token, `width` floats each (kv heads * head dim). `window`: K and V of the last
 * `window` tokens only, kept per sequence in a ring of pages. `cross`: nothing per token; the
 * layer attends to its sequence's image states, which live with the sequence (width 0).
 */
export interface KvLayerSpec {
  /** `latent`: one vector per token (MLA's latent and rope key), kept in the K array; no V. */
  kind: 'full' | 'window' | 'cross' | 'latent';
  width: number;
  /** `window` layers: tokens each token sees, itself included. */
  window?: number;
}

/** Bytes of KV cache one token takes in the layers that keep every token. */
export function kvBytesPerToken(layers: KvLayerSpec[]): number {
  return layers.reduce((a, l) => a + (l.kind === 'full' ? 2 * l.width * 4 : l.kind === 'latent' ? l.width * 4 : 0), 0);
}

/** Bytes one token takes in the sliding-window layers (while it is in their window). */
export function windowBytesPerToken(layers: KvLayerSpec[]): number {
  return layers.reduce((a, l) => a + (l.kind === 'window' ? 2 * l.width * 4 : 0), 0);
}

/** Pages of a full ring: enough for a window plus the page being filled. */
export function ringPages(layers: KvLayerSpec[], pageSize: number): number {
  const w = Math.max(0, ...layers.map((l) => (l.kind === 'window' ? l.window! : 0)));
  return w > 0 ? Math.ceil(w / pageSize) + 1 : 0;
}

/** Where a sequence keeps its K/V: pages of every token, and the ring of its window layers. */
export interface KvHolder {
  pages: number[];
  ring?: number[];
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
  private readonly freeWindow: number[] = [];
  /** Pages of a full ring (0: no window layers). */
  readonly ringSize: number;

  /**
   * `numPages` pages for the layers that keep every token; `windowPages` for the window
   * layers' rings, which only hold each sequence's last window of tokens.
   */
  constructor(
    readonly layers: KvLayerSpec[],
    readonly numPages: number,
    readonly pageSize: number,
    readonly windowPages = 0,
  ) {
    const slots = (l: KvLayerSpec) => (l.kind === 'full' || l.kind === 'latent' ? numPages : l.kind === 'window' ? windowPages : 0) * pageSize * l.width;
    this.k = layers.map((l) => new Float32Array(slots(l)));
    this.v = layers.map((l) => new Float32Array(l.kind === 'latent' ? 0 : slots(l)));
    for (let p = numPages - 1; p >= 1; p--) this.free.push(p);
    for (let p = windowPages - 1; p >= 1; p--) this.freeWindow.push(p);
    this.ringSize = ringPages(layers, pageSize);
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

  get freeWindowPages(): number {
    return this.freeWindow.length;
  }

  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  /** Ring pages a sequence of at most `tokens` tokens needs (a short one never wraps). */
  ringFor(tokens: number): number {
    return this.ringSize === 0 ? 0 : Math.min(this.ringSize, this.pagesFor(tokens) + 1);
  }

  /** Takes `n` pages, or throws when the pool is exhausted (callers check freePages first). */
  alloc(n: number): number[] {
    if (n > this.free.length) throw new IrisError(`KV cache exhausted: need ${n} pages, ${this.free.length} free`, { status: 503, type: 'ServiceUnavailableError' });
    return this.free.splice(this.free.length - n, n);
  }

  release(pages: number[]): void {
    for (const p of pages) this.free.push(p);
  }

  allocRing(n: number): number[] {
    if (n > this.freeWindow.length) throw new IrisError(`sliding-window KV exhausted: need ${n} pages, ${this.freeWindow.length} free`, { status: 503, type: 'ServiceUnavailableError' });
    return this.freeWindow.splice(this.freeWindow.length - n, n);
  }

  releaseRing(pages: number[]): void {
    for (const p of pages) this.freeWindow.push(p);
  }

  /** Copies the first `len` token slots of page `src` into page `dst` (copy-on-write of a shared page). */
  copyPage(src: number, dst: number, len: number): void {
    this.layers.forEach(({ kind, width: W }, l) => {
      if (kind !== 'full' && kind !== 'latent') return;
      const a = src * this.pageSize * W;
      const b = dst * this.pageSize * W;
      this.k[l]!.copyWithin(b, a, a + len * W);
      if (kind === 'full') this.v[l]!.copyWithin(b, a, a + len * W);
    });
  }

  /** Copies a window page's K/V, all its slots, in every window layer (ring pages to and from the prefix cache). */
  copyWindowPage(src: number, dst: number): void {
    this.layers.forEach(({ kind, width: W }, l) => {
      if (kind !== 'window') return;
      const n = this.pageSize * W;
      this.k[l]!.copyWithin(dst * n, src * n, src * n + n);
      this.v[l]!.copyWithin(dst * n, src * n, src * n + n);
    });
  }

  /**
   * Copies `count` new tokens' K/V rows, starting at row `srcRow` of a graph output [rows,
   * width], into a sequence's slots for token positions start.. : its pages for a full layer,
   * its ring for a window layer (a token goes to ring page (position / page) mod ring length).
   */
  write(layer: number, kNew: Float32Array, vNew: Float32Array, srcRow: number, count: number, at: KvHolder, start: number): void {
    const spec = this.layers[layer]!;
    const W = spec.width;
    const kDst = this.k[layer]!;
    const vDst = this.v[layer]!;
    const ps = this.pageSize;
    const ring = spec.kind === 'window' ? at.ring! : null;
    for (let s = 0; s < count; s++) {
      const pos = start + s;
      const page = ring ? ring[Math.floor(pos / ps) % ring.length]! : at.pages[Math.floor(pos / ps)]!;
      const slot = page * ps + (pos % ps);
      const src = (srcRow + s) * W;
      kDst.set(kNew.subarray(src, src + W), slot * W);
      if (spec.kind !== 'latent') vDst.set(vNew.subarray(src, src + W), slot * W);
    }
  }
}
