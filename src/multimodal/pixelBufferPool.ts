/**
 * Recycled float32 buffers for preprocessed pixels. A 1280x960 image takes ~29 MB of
 * pixel values; on hosts where first writes to fresh memory fault page by page, allocating
 * them anew costs more than the preprocessing itself. The engine thread hands the buffers
 * back when a request ends, and the next image of a similar size reuses one.
 */
export class PixelBufferPool {
  private free: ArrayBuffer[] = [];
  private held = 0;

  constructor(private readonly capBytes: number) {}

  /** Bytes waiting for reuse. */
  get bytes(): number {
    return this.held;
  }

  /**
   * A Float32Array of `length` elements, on a recycled buffer when one fits (at most twice
   * the size needed), otherwise new. Its contents are stale: the caller writes every element.
   */
  take(length: number): Float32Array {
    const need = length * 4;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const size = this.free[i]!.byteLength;
      if (size >= need && size <= 2 * need && (best < 0 || size < this.free[best]!.byteLength)) best = i;
    }
    if (best < 0) return new Float32Array(length);
    const buf = this.free.splice(best, 1)[0]!;
    this.held -= buf.byteLength;
    return new Float32Array(buf, 0, length);
  }

  /** Takes a buffer back; the oldest ones are dropped beyond the cap. */
  give(buf: ArrayBuffer): void {
    if (buf.byteLength === 0 || buf.byteLength > this.capBytes) return;
    this.free.push(buf);
    this.held += buf.byteLength;
    while (this.held > this.capBytes) this.held -= this.free.shift()!.byteLength;
  }
}
