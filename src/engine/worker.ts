import { parentPort } from 'node:worker_threads';
import { IrisError, ModelLoadError } from '../errors.js';
import { kvLayers, loadModel, loadModelConfig, residentBytesByMode } from '../models/registry.js';
import { WeightStore } from '../runtime/weightStore.js';
import { readGenerationConfig } from './generationConfig.js';
import { KvPagePool, kvBytesPerToken, ringPages, windowBytesPerToken } from './kvPool.js';
import { QUANT_MODES, memoryFacts, planMemory } from './memoryPlan.js';
import { EngineOptions, FromWorker, GenerateMsg, ToWorker } from './messages.js';
import { Scheduler } from './scheduler.js';
import { GrammarService } from '../structured/grammarService.js';

/** The engine thread: owns the model, the KV pool and the scheduler loop. */
const port = parentPort!;
const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
let scheduler: Scheduler | null = null;
/** What grammars need of the model: its folder (tokenizer), logits size and stop tokens. */
let grammarModel: { dir: string; vocabSize: number; eos: number[] } | null = null;
let grammars: GrammarService | null = null;
/** Constrained requests whose grammar is compiling, and those of them aborted meanwhile. */
const compiling = new Set<string>();
const abortedWhileCompiling = new Set<string>();
let looping = false;
let stopping = false;

function errorMsg(e: unknown, id: string | null): FromWorker {
  const err = e instanceof IrisError ? e : new IrisError((e as Error)?.message ?? String(e));
  return { type: 'error', id, message: err.message, status: err.status, errorType: err.type };
}

async function init(options: EngineOptions): Promise<void> {
  const t0 = performance.now();
  const config = loadModelConfig(options.modelPath);
  const gen = readGenerationConfig(options.modelPath);
  const tc = config.text;
  const contextLength = Math.min(options.contextLength ?? tc.maxPositionEmbeddings, tc.maxPositionEmbeddings);
  const store = WeightStore.open(options.modelPath, config.raw.quantization_config);
  const kv = kvLayers(config);
  let requested = options.quantization ?? 'auto';
  if (requested === 'awq' || requested === 'gptq') {
    if (store.scheme?.method !== requested) throw new ModelLoadError(`--quantization ${requested}: ${options.modelPath} is not a${requested === 'awq' ? 'n AWQ' : ' GPTQ'} checkpoint (config.json quantization_config: ${store.scheme?.method ?? 'none'})`);
    requested = 'auto';
  }
  const pageSize = 16;
  const maxRunning = options.maxRunningRequests ?? 64;
  // Sliding-window layers keep each running sequence's last window in a ring: room for up to
  // 16 full rings (short sequences take fewer pages; more wait for room).
  const windowCapTokens = ringPages(kv, pageSize) * pageSize * Math.min(maxRunning, 16);
  const plan = planMemory({
    residentBytes: residentBytesByMode(store, config, requested === 'auto' ? QUANT_MODES : [requested]),
    kvBytesPerToken: kvBytesPerToken(kv),
    windowBytesPerToken: windowBytesPerToken(kv),
    windowCapTokens,
    contextLength,
    requested,
    maxTotalTokens: options.maxTotalTokens,
    memFractionStatic: options.memFractionStatic,
    facts: memoryFacts(),
  });
  send({ type: 'progress', what: plan.summary, notice: plan.mode !== 'none' && requested === 'auto' ? 'warning' : 'info' });
  const model = await loadModel(store, config, {
    intraOpThreads: options.threads ?? 0,
    pageSize,
    quantization: plan.mode,
    accuracyLevel: options.accuracyLevel,
    onProgress: (what) => send({ type: 'progress', what }),
  });
  const maxTotalTokens = plan.kvTokens;
  if (model.pageSize !== pageSize) throw new Error(`the model was built for pages of ${model.pageSize} tokens, the pool has ${pageSize}`);
  const windowPages = windowCapTokens > 0 ? Math.ceil(Math.min(windowCapTokens, maxTotalTokens) / pageSize) + 1 : 0;
  const pool = new KvPagePool(kv, Math.ceil(maxTotalTokens / pageSize) + 1, pageSize, Math.max(windowPages, windowCapTokens > 0 ? ringPages(kv, pageSize) + 1 : 0));
  const eos = [...new Set([...gen.eosTokenIds, ...config.eosTokenIds])];
  grammarModel = { dir: options.modelPath, vocabSize: tc.vocabSize, eos };
  scheduler = new Scheduler(model, pool, eos, {
    contextLength,
    maxRunning,
    maxQueued: options.maxQueuedRequests ?? 1024,
    chunkedPrefillSize: options.chunkedPrefillSize ?? 1024,
    radixCache: !options.disableRadixCache,
    visionCacheBytes: (options.visionCacheMb ?? 256) * 1024 * 1024,
  });
  send({
    type: 'ready',
    info: {
      architecture: config.architecture,
      modelType: config.modelType,
      vocabSize: tc.vocabSize,
      contextLength,
      maxTotalTokens: pool.usablePages * pageSize,
      weightBytes: model.weightBytes,
      residentWeightBytes: model.residentBytes,
      quantization: plan.mode,
      memoryPlan: plan.summary,
      loadSeconds: (performance.now() - t0) / 1000,
    },
  });
}

/**
 * A request with a grammar joins the scheduler once its grammar is compiled (on the grammar
 * thread, cached by its text) and its state is opened; meanwhile the engine steps on.
 */
async function admitConstrained(m: GenerateMsg): Promise<void> {
  compiling.add(m.id);
  try {
    grammars ??= GrammarService.start(grammarModel!.dir, grammarModel!.vocabSize);
    scheduler!.grammars = grammars;
    const c = m.sampling.constraint!;
    await grammars.compile(c);
    await grammars.open(m.id, c, [...new Set([...grammarModel!.eos, ...m.sampling.stopTokenIds])]);
    if (abortedWhileCompiling.has(m.id)) {
      grammars.close(m.id);
      send({ type: 'tokens', id: m.id, tokens: [], finish: 'abort', matchedStop: null, promptTokens: m.ids.length, cachedTokens: 0 });
      return;
    }
    scheduler!.add(m);
    void loop();
  } catch (e) {
    grammars?.close(m.id);
    send(errorMsg(e, m.id));
  } finally {
    compiling.delete(m.id);
    abortedWhileCompiling.delete(m.id);
  }
}

async function loop(): Promise<void> {
  if (looping || !scheduler) return;
  looping = true;
  try {
    while (!scheduler.idle && !stopping) {
      let events;
      try {
        events = await scheduler.step();
      } catch (e) {
        const ids = (e as { seqIds?: string[] }).seqIds;
        if (ids) for (const id of ids) send(errorMsg(e, id));
        else send(errorMsg(e, null));
        continue;
      }
      for (const ev of events) {
        if (ev.finish) grammars?.close(ev.seq.id);
        if (ev.error) {
          send(errorMsg(new IrisError(ev.error), ev.seq.id));
          continue;
        }
        const tokens = ev.seq.pending;
        ev.seq.pending = [];
        // A request that ended normally is past its vision encoding: its pixel buffers go back
        // to the main thread's pool. (An aborted one may still be in a vision batch: dropped.)
        const spentPixels = ev.finish && ev.finish !== 'abort' ? [...new Set(ev.seq.images.map((i) => i.pixelValues.buffer as ArrayBuffer))] : [];
        send({ type: 'tokens', id: ev.seq.id, tokens, finish: ev.finish, matchedStop: ev.matchedStop, promptTokens: ev.seq.promptIds.length, cachedTokens: ev.seq.cachedPromptTokens, spentPixels }, spentPixels);
      }
      // Let abort and new-request messages in between steps.
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    looping = false;
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'init':
      init(m.options).catch((e) => send(errorMsg(e, null)));
      break;
    case 'generate':
      if (m.sampling.constraint) {
        void admitConstrained(m);
        break;
      }
      try {
        scheduler!.add(m);
        void loop();
      } catch (e) {
        send(errorMsg(e, m.id));
      }
      break;
    case 'abort': {
      if (compiling.has(m.id)) {
        abortedWhileCompiling.add(m.id);
        break;
      }
      const removed = scheduler?.abort(m.id);
      // A running one finishes as aborted at the next step, which closes its grammar state.
      if (removed) grammars?.close(m.id);
      if (removed) send({ type: 'tokens', id: m.id, tokens: [], finish: 'abort', matchedStop: null, promptTokens: removed.promptIds.length, cachedTokens: 0 });
      void loop();
      break;
    }
    case 'stats':
      if (scheduler) send({ type: 'stats', stats: scheduler.stats() });
      break;
    case 'shutdown':
      stopping = true;
      process.exit(0);
  }
});
