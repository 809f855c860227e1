/**
 * Tiny random-weight checkpoints for tests, written by tools/checkpoint.ts into one
 * temporary folder per test process (removed when the process exits), plus helpers
 * to load them, run them and make small images.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Engine, EngineLoadOptions } from '../../src/engine/engine.js';
import { KvPagePool } from '../../src/engine/kvPool.js';
import { kvLayers, loadModel, loadModelConfig } from '../../src/models/registry.js';
import type { ChatMessage } from '../../src/tokenizer/chatMessages.js';
import { CheckpointInfo, CheckpointOptions, writeCheckpoint } from '../../tools/checkpoint.js';

let root: string | null = null;
let serial = 0;
const cache = new Map<string, CheckpointInfo>();

function tempRoot(): string {
  if (!root) {
    root = mkdtempSync(join(tmpdir(), `iris-ckpt-${process.pid}-`));
    process.once('exit', cleanupCheckpoints);
  }
  return root;
}

/**
 * A checkpoint written once per test process for these options (options holding
 * functions, i.e. mapTensor/patchConfig, need a `key` naming the variant).
 */
export function tinyCheckpoint(opts: CheckpointOptions, key?: string): CheckpointInfo {
  const hasHooks = Boolean(opts.mapTensor || opts.patchConfig || opts.onProgress);
  if (hasHooks && !key) throw new Error('tinyCheckpoint: give a key for options with hooks');
  const k = key ?? JSON.stringify(opts, Object.keys(flatten(opts)).sort());
  const hit = cache.get(k);
  if (hit) return hit;
  const info = freshCheckpoint(opts);
  cache.set(k, info);
  return info;
}

function flatten(o: object, out: Record<string, true> = {}): Record<string, true> {
  for (const [k, v] of Object.entries(o)) {
    out[k] = true;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, out);
  }
  return out;
}

/** A new checkpoint folder every call (for tests that then break its files). */
export function freshCheckpoint(opts: CheckpointOptions): CheckpointInfo {
  const dir = join(tempRoot(), `${opts.arch}-${opts.dtype ?? 'F32'}-${serial++}`);
  return writeCheckpoint(dir, opts);
}

/** Removes every checkpoint this process wrote (also done at exit). */
export function cleanupCheckpoints(): void {
  if (root) rmSync(root, { recursive: true, force: true });
  root = null;
  cache.clear();
}

/** Loads an engine (one ORT thread: test files may run side by side), runs `fn`, always shuts it down. */
export async function withEngine<T>(modelPath: string, fn: (e: Engine) => Promise<T>, opts: Partial<EngineLoadOptions> = {}): Promise<T> {
  const engine = await Engine.load({ modelPath, threads: 1, maxTotalTokens: 2048, ...opts });
  try {
    return await fn(engine);
  } finally {
    await engine.shutdown();
  }
}

/** The full last-token logits of a text-only prompt, from the model run directly (no engine thread). */
export async function lastTokenLogits(modelPath: string, ids: number[]): Promise<Float32Array> {
  const config = loadModelConfig(modelPath);
  const model = await loadModel(modelPath, config, { intraOpThreads: 1 });
  try {
    const tc = config.text;
    const pool = new KvPagePool(kvLayers(config), Math.ceil(ids.length / model.pageSize) + 2, model.pageSize);
    const pos = model.promptPositions(ids, []);
    const logits = await model.forward([{ ids, positions: pos.positions, pages: pool.alloc(pool.pagesFor(ids.length)), pastLen: 0 }], new Float32Array(0), pool);
    return Float32Array.from(logits.subarray(0, tc.vocabSize));
  } finally {
    await model.release();
  }
}

/** A PNG of the given size made from deterministic raw RGB pixels (gradients plus a pattern). */
export async function makePng(width: number, height: number, seed = 1): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      raw[o] = (x * 255) / Math.max(1, width - 1);
      raw[o + 1] = (y * 255) / Math.max(1, height - 1);
      raw[o + 2] = ((x * 7 + y * 13) * seed) & 0xff;
    }
  }
  return new Uint8Array(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

export function dataUri(bytes: Uint8Array, mime = 'image/png'): string {
  return `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
}

/** One user turn with an image (as an OpenAI image_url data URI) and a question. */
export function imageMessages(uri: string, text = 'What is in this image?'): ChatMessage[] {
  return [{ role: 'user', content: [{ type: 'image_url', image_url: { url: uri } }, { type: 'text', text }] }];
}

/** Greedy, a fixed number of tokens whatever the model samples (random weights often pick EOS). */
export const GREEDY_8 = { temperature: 0, maxNewTokens: 8, topLogprobs: 5, ignoreEos: true } as const;

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A few fixed text token ids (ordinary BPE tokens of the golden tokenizer, below the special ids 287+). */
export function promptIds(n: number, offset = 0): number[] {
  return Array.from({ length: n }, (_, i) => (17 + 37 * (i + offset)) % 280);
}
