import { KvPagePool } from './kvPool.js';

/**
 * One cached page: the K/V of `len` tokens whose keys are `keys`, following its
 * parent's tokens. Full pages (len == pageSize) may have children; a partial page
 * is always a leaf, shared only by copying it (copy-on-write).
 */
interface CacheNode {
  keys: Int32Array;
  len: number;
  page: number;
  parent: CacheNode | null;
  children: Map<string, CacheNode>;
  /** Running sequences reading this page in place. */
  refs: number;
  lastUsed: number;
  /** The window layers' K/V of the page's tokens (a window-pool page), or -1: kept only for a sequence's last window. */
  windowPage: number;
  /** Slots of `windowPage` that hold K/V, from the page's start. */
  windowLen: number;
}

/** A copy of a sequence's window K/V of one page, taken before its ring overwrote it: the first `len` slots. */
export interface WindowSnapshot {
  pageIndex: number;
  windowPage: number;
  len: number;
}

export interface PrefixMatch {
  /** Full pages to use in place (locked until released). */
  nodes: CacheNode[];
  /** A page to copy the first `copyLen` slots of, or null. */
  copyFrom: { page: number; len: number } | null;
  /** Tokens covered: nodes * pageSize + copyLen. */
  tokens: number;
  /** With window layers: the cached window page of each page index the match needs (its last window), to copy into the sequence's ring. */
  windowPages?: Array<[pageIndex: number, windowPage: number]>;
  /** The node `copyFrom` reads. */
  copyNode?: CacheNode | null;
}

/**
 * RadixAttention over pages: a tree whose edges are page-sized runs of token
 * keys (image tokens carry a key derived from the image's content hash, so
 * different images never share a prefix). Pages are reference-counted while
 * sequences read them; unreferenced leaves are evicted least recently used.
 */
export class PrefixCache {
  private readonly root: CacheNode;
  private clock = 0;
  private cachedPages = 0;

  constructor(private readonly pool: KvPagePool) {
    this.root = { keys: new Int32Array(0), len: 0, page: -1, parent: null, children: new Map(), refs: 1, lastUsed: 0, windowPage: -1, windowLen: 0 };
  }

  /** Pages held by the cache (evictable when unreferenced). */
  get pages(): number {
    return this.cachedPages;
  }

  private static keyOf(keys: ArrayLike<number>, start: number, len: number): string {
    return Array.prototype.join.call(Array.prototype.slice.call(keys, start, start + len), ',');
  }

  /** Longest cached prefix of `keys`, at most `maxTokens` long. Locks the full pages it returns. */
  match(keys: ArrayLike<number>, maxTokens: number): PrefixMatch {
    const ps = this.pool.pageSize;
    const nodes: CacheNode[] = [];
    let node = this.root;
    let pos = 0;
    const now = ++this.clock;
    while (pos + ps <= maxTokens) {
      const child = node.children.get(PrefixCache.keyOf(keys, pos, ps));
      if (!child || child.len !== ps) break;
      child.refs++;
      child.lastUsed = now;
      nodes.push(child);
      node = child;
      pos += ps;
    }
    // The rest may share a beginning with some child page: copy that many slots.
    let best: CacheNode | null = null;
    let bestLen = 0;
    const room = Math.min(ps, maxTokens - pos);
    for (const child of node.children.values()) {
      let l = 0;
      while (l < Math.min(room, child.len) && child.keys[l] === keys[pos + l]) l++;
      if (l > bestLen) {
        bestLen = l;
        best = child;
      }
    }
    if (best) best.lastUsed = now;
    return { nodes, copyFrom: best ? { page: best.page, len: bestLen } : null, tokens: pos + bestLen, copyNode: best };
  }

  /**
   * Shortens a match so that window layers of `window` tokens find the K/V of the last
   * window - 1 tokens before its end in cached window pages (kept only where an earlier
   * sequence's last window was); pages no longer used are unlocked.
   */
  limitToWindow(m: PrefixMatch, window: number): PrefixMatch {
    const ps = this.pool.pageSize;
    const copyNode = m.copyNode ?? null;
    const pageAt = (i: number) => (i < m.nodes.length ? m.nodes[i]! : copyNode);
    const covered = (end: number) => {
      if (end === 0) return [] as Array<[number, number]>;
      const out: Array<[number, number]> = [];
      for (let i = Math.floor(Math.max(0, end - window + 1) / ps); i <= Math.floor((end - 1) / ps); i++) {
        const n = pageAt(i);
        if (!n || n.windowPage < 0 || n.windowLen < Math.min(ps, end - i * ps)) return null;
        out.push([i, n.windowPage]);
      }
      return out;
    };
    // Ends to try: the whole match, then page boundaries going back.
    const ends = [m.tokens, ...Array.from({ length: m.nodes.length + 1 }, (_, k) => (m.nodes.length - k) * ps).filter((e) => e < m.tokens)];
    for (const end of ends) {
      const pages = covered(end);
      if (!pages) continue;
      const keep = Math.floor(end / ps);
      this.unlock(m.nodes.slice(keep));
      const copy = end > keep * ps ? m.copyFrom : null;
      return { nodes: m.nodes.slice(0, keep), copyFrom: copy, tokens: end, windowPages: pages };
    }
    return { nodes: [], copyFrom: null, tokens: 0, windowPages: [] };
  }

  /** Unlocks the pages a match (or a sequence) was reading. */
  unlock(nodes: CacheNode[]): void {
    for (const n of nodes) n.refs--;
  }

  /**
   * Hands a finished (or preempted) sequence's pages to the cache: pages it read
   * from the cache are unlocked, new ones become cache nodes, duplicates of
   * pages already cached go back to the pool.
   */
  insert(keys: ArrayLike<number>, tokens: number, pages: number[], locked: CacheNode[], ring: number[] = [], snapshots: WindowSnapshot[] = []): void {
    const ps = this.pool.pageSize;
    this.unlock(locked);
    // The ring still holds the window layers' K/V of the last ring-length pages: those go with
    // their nodes; so do snapshots of earlier pages (the end of the prompt), where the ring no longer has them.
    const lastPage = Math.floor((tokens - 1) / ps);
    const held = new Map<number, { page: number; len: number }>();
    for (const sn of snapshots) held.set(sn.pageIndex, { page: sn.windowPage, len: sn.len });
    for (let i = Math.max(0, lastPage - ring.length + 1); i <= lastPage && tokens > 0; i++) held.set(i, { page: ring[i % ring.length]!, len: Math.min(ps, tokens - i * ps) });
    const adopted = new Set<number>();
    const adopt = (node: CacheNode, i: number) => {
      const w = held.get(i);
      if (w === undefined || node.windowLen >= w.len) return;
      if (node.windowPage >= 0) this.pool.releaseRing([node.windowPage]);
      node.windowPage = w.page;
      node.windowLen = w.len;
      adopted.add(w.page);
    };
    const now = ++this.clock;
    let node = this.root;
    let pos = 0;
    let i = 0;
    for (; pos < tokens; i++, pos += ps) {
      const len = Math.min(ps, tokens - pos);
      const key = PrefixCache.keyOf(keys, pos, len);
      const existing = node.children.get(key);
      if (existing && existing.len === len) {
        if (existing.page !== pages[i]) this.pool.release([pages[i]!]);
        existing.lastUsed = now;
        adopt(existing, i);
        node = existing;
        continue;
      }
      const child: CacheNode = { keys: Int32Array.from(Array.prototype.slice.call(keys, pos, pos + len) as number[]), len, page: pages[i]!, parent: node, children: new Map(), refs: 0, lastUsed: now, windowPage: -1, windowLen: 0 };
      adopt(child, i);
      node.children.set(key, child);
      this.cachedPages++;
      if (len < ps) {
        i++;
        break;
      }
      node = child;
    }
    // Pages past the cached tokens (room reserved for tokens never computed).
    if (i < pages.length) this.pool.release(pages.slice(i));
    this.pool.releaseRing([...ring, ...snapshots.map((sn) => sn.windowPage)].filter((p) => !adopted.has(p)));
  }

  /** Gives up to `n` window pages back to the pool, forgetting the least recently used nodes' window K/V. */
  dropWindowPages(n: number): number {
    const held: CacheNode[] = [];
    const stack: CacheNode[] = [this.root];
    while (stack.length) {
      const x = stack.pop()!;
      if (x.windowPage >= 0) held.push(x);
      for (const c of x.children.values()) stack.push(c);
    }
    held.sort((a, b) => a.lastUsed - b.lastUsed);
    const drop = held.slice(0, n);
    this.pool.releaseRing(drop.map((x) => x.windowPage));
    for (const x of drop) {
      x.windowPage = -1;
      x.windowLen = 0;
    }
    return drop.length;
  }

  /** Frees up to `n` pages by evicting unreferenced leaves, least recently used first. */
  evict(n: number): number {
    let freed = 0;
    while (freed < n) {
      let victim: CacheNode | null = null;
      const stack: CacheNode[] = [this.root];
      while (stack.length) {
        const x = stack.pop()!;
        if (x !== this.root && x.children.size === 0 && x.refs === 0 && (!victim || x.lastUsed < victim.lastUsed)) victim = x;
        for (const c of x.children.values()) stack.push(c);
      }
      if (!victim) break;
      victim.parent!.children.delete(PrefixCache.keyOf(victim.keys, 0, victim.len));
      this.pool.release([victim.page]);
      if (victim.windowPage >= 0) this.pool.releaseRing([victim.windowPage]);
      this.cachedPages--;
      freed++;
    }
    return freed;
  }

  /** Pages that eviction could free now. */
  evictable(): number {
    let count = 0;
    const walk = (x: CacheNode): boolean => {
      let allFree = x.refs === 0;
      for (const c of x.children.values()) if (!walk(c)) allFree = false;
      if (allFree && x !== this.root) count++;
      return allFree;
    };
    walk(this.root);
    return count;
  }
}
