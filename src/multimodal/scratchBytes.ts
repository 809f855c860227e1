/**
 * A byte buffer reused across calls for data that never outlives the call that fills it.
 * On some hosts the first write to freshly allocated memory faults page by page and costs
 * more than the image work itself. Requests above `maxBytes` get a fresh array, so a huge
 * image does not pin its size in memory.
 */
export class ScratchBytes {
  private buf = new Uint8Array(0);

  constructor(private readonly maxBytes: number) {}

  /** `n` bytes with stale contents, valid until the next call. */
  get(n: number): Uint8Array {
    if (n > this.maxBytes) return new Uint8Array(n);
    if (this.buf.length < n) this.buf = new Uint8Array(n);
    return this.buf.subarray(0, n);
  }
}
