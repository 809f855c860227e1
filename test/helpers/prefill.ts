import { KvPagePool } from '../../src/engine/kvPool.js';
import { ModelConfig } from '../../src/models/config.js';
import { VisionLanguageModel } from '../../src/models/model.js';
import { kvLayers } from '../../src/models/registry.js';
import { ProcessedImage } from '../../src/multimodal/processor.js';

/**
 * Runs a prompt (image placeholders already expanded) through a model directly,
 * as reference cases are checked: positions, image embeddings in prompt order,
 * and the last-position logits, with pages left for `room` more tokens.
 */
export async function prefillPrompt(model: VisionLanguageModel, config: ModelConfig, ids: number[], processed: ProcessedImage[], room: number) {
  const starts: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === config.imageTokenId && ids[i - 1] !== config.imageTokenId) starts.push(i);
  const images = processed.map((p, k) => ({ start: starts[k]!, grid: p.grid }));
  const pos = model.promptPositions(ids, images);
  const embeds = await model.encodeImages(processed.map((p) => ({ pixelValues: p.pixelValues, grid: p.grid })));
  const hidden = config.text.hiddenSize;
  const extra = new Float32Array(embeds.reduce((a, e) => a + e.length, 0));
  const rows = new Int32Array(ids.length).fill(-1);
  let r = 0;
  embeds.forEach((e, k) => {
    extra.set(e, r * hidden);
    for (let j = 0; j < e.length / hidden; j++) rows[images[k]!.start + j] = r + j;
    r += e.length / hidden;
  });
  const tc = config.text;
  const pool = new KvPagePool(kvLayers(config), 64, model.pageSize);
  const pages = pool.alloc(pool.pagesFor(ids.length + room));
  const logits = await model.forward([{ ids, positions: pos.positions, embedRows: rows, pages, pastLen: 0 }], extra, pool);
  return { pos, extra, embedsCount: embeds.length, logits, pool, pages };
}

/** Greedy tokens after a prefillPrompt run (EOS not a stop), decoding one token a step. */
export async function greedyAfter(model: VisionLanguageModel, run: Awaited<ReturnType<typeof prefillPrompt>>, promptLen: number, steps: number): Promise<number[]> {
  const out: number[] = [];
  let logits = run.logits;
  let past = promptLen;
  let next = run.pos.next;
  for (let s = 0; s < steps; s++) {
    let tok = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[tok]!) tok = i;
    out.push(tok);
    logits = await model.forward([{ ids: [tok], positions: Int32Array.of(next, next, next), pages: run.pages, pastLen: past }], new Float32Array(0), run.pool);
    past++;
    next++;
  }
  return out;
}
