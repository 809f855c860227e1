import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { InvalidRequestError, IrisError, ModelLoadError } from '../errors.js';
import { ModelConfig } from '../models/config.js';
import { defaultChatTemplate, loadImageProcessor, loadModelConfig } from '../models/registry.js';
import { DEFAULT_MEDIA_LIMITS } from '../multimodal/fetchMedia.js';
import { DecodedImageCache, ImageLimits, loadImages } from '../multimodal/loadImages.js';
import { PixelBufferPool } from '../multimodal/pixelBufferPool.js';
import { ImageProcessor, PixelBudget, ProcessedImage } from '../multimodal/processor.js';
import { ChatTemplate, hasChatTemplate } from '../tokenizer/chatTemplate.js';
import type { ChatMessage } from '../tokenizer/chatMessages.js';
import { IncrementalDetokenizer } from '../tokenizer/detokenizer.js';
import { DownloadProgress, resolveModelPath } from '../hub/index.js';
import { expandImagePlaceholders, locateImages } from '../tokenizer/placeholders.js';
import { StopStringMatcher } from '../tokenizer/stopStrings.js';
import { TextTokenizer } from '../tokenizer/tokenizer.js';
import { GenerationConfig, readGenerationConfig } from './generationConfig.js';
import { EngineOptions, EngineStats, NoticeLevel, FinishReason, FromWorker, ImageForEngine, ModelInfo, StepToken, ToWorker } from './messages.js';
import { DEFAULT_SAMPLING, SamplingParams, validateSampling } from './samplingParams.js';
import { configureOrtEnvironment } from '../runtime/ortEnvironment.js';

export type ImageSource = string | Uint8Array;

export { DEFAULT_IMAGE_MAX_TOKENS } from '../multimodal/processor.js';

export interface EngineLoadOptions extends EngineOptions {
  /** A chat template file or template text, replacing the model's. */
  chatTemplate?: string;
  imageLimits?: Partial<ImageLimits>;
  /** Pixel budget of images sent with detail "low" (default 128 * 28 * 28). */
  lowDetailMaxPixels?: number;
  /** Gemma 3's pan-and-scan crops of long images (default the checkpoint's: off). */
  panAndScan?: boolean;
  /** Most tokens one image may take (0: the model's own limit); default the family's (DEFAULT_IMAGE_MAX_TOKENS for resizing processors, none for fixed canvases). */
  imageMaxTokens?: number;
  onProgress?: (what: string) => void;
  /** A Hub model id's revision (branch, tag or commit; default main). */
  revision?: string;
  /** Progress of files downloaded from the Hub. */
  onDownloadProgress?: (e: DownloadProgress) => void;
  /** One-line warnings while loading (the memory plan, a Hub fallback to the cache). */
  onNotice?: (line: string, level: NoticeLevel) => void;
}

/** What to generate from: chat messages, or a raw prompt with images. */
export interface GenerateInput {
  messages?: ChatMessage[];
  /** Raw prompt text; its image placeholders (or, if none, one per image at the start) take `images` in order. */
  prompt?: string;
  /** Token ids instead of text. */
  inputIds?: number[];
  /** The request field the prompt came from, for error messages (default: messages, prompt or input_ids). */
  inputField?: string;
  images?: ImageSource[];
  sampling?: Partial<SamplingParams>;
  /** Per-request pixel budget for image resizing. */
  pixelBudget?: PixelBudget;
  chatTemplateKwargs?: Record<string, unknown>;
  /** Tools for the chat template's `tools` variable (OpenAI's `[{type: 'function', function: {...}}]`). */
  tools?: unknown[];
  /** Settings of the model's image processor for this request (vLLM's mm_processor_kwargs). */
  processorKwargs?: Record<string, unknown>;
  /** Leave the last (assistant) message open and continue it, instead of starting a new turn. */
  continueFinalMessage?: boolean;
  signal?: AbortSignal;
}

export interface TokenLogprobInfo {
  tokenId: number;
  token: string;
  /** The token's raw bytes (may be part of a UTF-8 character). */
  bytes: number[];
  logprob: number;
  top: Array<{ tokenId: number; token: string; bytes: number[]; logprob: number }>;
}

export interface Usage {
  /** Prompt tokens whose KV came from the prefix cache. */
  cachedTokens?: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface GenerateChunk {
  /** New text (never a broken character, never part of a stop string). */
  text: string;
  tokenIds: number[];
  logprobs: TokenLogprobInfo[] | null;
  finishReason: FinishReason | null;
  /** The eos token id or stop string that ended generation. */
  matchedStop: number | string | null;
  usage: Usage | null;
  /** The rendered prompt text (null for token-id input). */
  prompt: string | null;
}

/** A request rendered, tokenized and with its images preprocessed, ready for the engine thread. */
export interface PreparedRequest {
  prompt: string | null;
  ids: Int32Array;
  images: ImageForEngine[];
  sampling: SamplingParams;
}

export interface GenerateResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  matchedStop: number | string | null;
  usage: Usage;
  logprobs: TokenLogprobInfo[] | null;
  prompt: string | null;
}

interface PendingRequest {
  push(m: Extract<FromWorker, { type: 'tokens' }>): void;
  fail(e: IrisError): void;
}

/**
 * The offline engine: loads a model folder and generates from chat messages or
 * prompts with images. Text and images are prepared on the caller's thread; the
 * model runs in a worker thread, so the caller's event loop stays free.
 */
export class Engine {
  private readonly pending = new Map<string, PendingRequest>();
  private statsWaiters: Array<(s: EngineStats) => void> = [];
  private readonly decoded = new DecodedImageCache();
  private readonly pixelPool = new PixelBufferPool(128 * 1024 * 1024);
  private readonly takePixels = (length: number) => this.pixelPool.take(length);
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    /** The model as the caller named it: a folder or a Hub id. */
    readonly modelPath: string,
    /** The folder the model was loaded from. */
    readonly modelDir: string,
    readonly config: ModelConfig,
    readonly tokenizer: TextTokenizer,
    readonly chatTemplate: ChatTemplate,
    private readonly processor: ImageProcessor,
    private readonly generation: GenerationConfig,
    readonly info: ModelInfo,
    private readonly imageLimits: ImageLimits,
    private readonly lowDetailMaxPixels: number,
    /** Most tokens one image may take; 0: the model's own limit. */
    readonly imageMaxTokens: number,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.failAll(new IrisError(`engine thread failed: ${e.message}`)));
    worker.on('exit', () => this.failAll(new IrisError('engine thread exited')));
  }

  /**
   * Loads a model folder, or a Hugging Face Hub model id (found in, or downloaded to, the
   * huggingface_hub cache). `modelPath` stays what the caller passed; `modelDir` is the folder.
   */
  static async load(opts: EngineLoadOptions): Promise<Engine> {
    const resolved = await resolveModelPath(opts.modelPath, { revision: opts.revision, onProgress: opts.onDownloadProgress, warn: (line) => opts.onNotice?.(line, 'warning') });
    const dir = resolved.dir;
    const config = loadModelConfig(dir);
    const tokenizer = TextTokenizer.load(dir);
    const processor = loadImageProcessor(dir, config, tokenizer, { panAndScan: opts.panAndScan });
    const chatTemplate = ChatTemplate.load(dir, opts.chatTemplate ?? (hasChatTemplate(dir) ? undefined : defaultChatTemplate(config)), processor.imageText ? { imagePlaceholder: processor.imageText, imagesInOrder: true } : {});
    const generation = readGenerationConfig(dir);
    const imageLimits: ImageLimits = {
      ...DEFAULT_MEDIA_LIMITS,
      allowedLocalMediaPath: 'any',
      maxImagePixels: 64 * 1024 * 1024,
      maxImagesPerRequest: 32,
      ...opts.imageLimits,
    };
    const { chatTemplate: _t, imageLimits: _l, onProgress, lowDetailMaxPixels: _d, panAndScan: _s, imageMaxTokens: _m, revision: _r, onDownloadProgress: _p, onNotice, ...rest } = opts;
    const workerOpts: EngineOptions = { ...rest, modelPath: dir };
    configureOrtEnvironment();
    const worker = new Worker(new URL('./worker.js', import.meta.url));
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const done = () => {
        worker.off('message', onMsg);
        worker.off('error', onCrash);
        worker.off('exit', onExit);
      };
      const fail = (e: Error) => {
        done();
        void worker.terminate();
        reject(e);
      };
      // A crash of the worker itself (out of memory, a native error) must not leave the
      // caller waiting or a half-loaded worker behind.
      const onCrash = (e: Error) => fail(new ModelLoadError(`the engine failed while loading ${opts.modelPath}: ${e.message}`));
      const onExit = (code: number) => fail(new ModelLoadError(`the engine exited (code ${code}) while loading ${opts.modelPath}`));
      const onMsg = (m: FromWorker) => {
        if (m.type === 'progress') {
          if (m.notice) onNotice?.(m.what, m.notice);
          else onProgress?.(m.what);
        }
        else if (m.type === 'ready') {
          done();
          resolve(m.info);
        } else if (m.type === 'error') fail(new IrisError(m.message, { status: m.status, type: m.errorType }));
      };
      worker.on('message', onMsg);
      worker.once('error', onCrash);
      worker.once('exit', onExit);
      worker.postMessage({ type: 'init', options: workerOpts } satisfies ToWorker);
    });
    return new Engine(worker, opts.modelPath, dir, config, tokenizer, chatTemplate, processor, generation, info, imageLimits, opts.lowDetailMaxPixels ?? 128 * 28 * 28, opts.imageMaxTokens ?? processor.defaultMaxTokens ?? 0);
  }

  /** Generates a whole completion. */
  async generate(input: GenerateInput): Promise<GenerateResult> {
    return this.collect(this.stream(await this.prepare(input), { signal: input.signal }));
  }

  /** Gathers a stream into one result. */
  async collect(stream: AsyncIterable<GenerateChunk>, prompt: string | null = null): Promise<GenerateResult> {
    let text = '';
    const tokenIds: number[] = [];
    let logprobs: TokenLogprobInfo[] | null = null;
    let last: GenerateChunk | null = null;
    for await (const c of stream) {
      text += c.text;
      tokenIds.push(...c.tokenIds);
      if (c.logprobs) (logprobs ??= []).push(...c.logprobs);
      last = c;
    }
    return {
      text,
      tokenIds,
      finishReason: last!.finishReason!,
      matchedStop: last!.matchedStop,
      usage: last!.usage!,
      logprobs,
      prompt: last!.prompt ?? prompt,
    };
  }

  /** Generates as a stream of chunks; the last one carries the finish reason and usage. */
  async *generateStream(input: GenerateInput): AsyncGenerator<GenerateChunk> {
    yield* this.stream(await this.prepare(input), { signal: input.signal });
  }

  /**
   * An image's pixel budget: at most imageMaxTokens tokens; detail "low" caps it at
   * lowDetailMaxPixels; "high" and "auto" keep the model's preprocessor_config.json budget
   * under that cap; the caller's own budget (Engine API) wins.
   */
  private budgetFor(detail: string | undefined, requested: PixelBudget | undefined): PixelBudget {
    const base: PixelBudget = { maxTokens: this.imageMaxTokens || undefined };
    if (detail === 'low') base.maxPixels = this.lowDetailMaxPixels;
    return { ...base, ...Object.fromEntries(Object.entries(requested ?? {}).filter(([, v]) => v !== undefined)) };
  }

  /** Sampling parameters with the model's generation_config defaults under the caller's. */
  resolveSampling(s: Partial<SamplingParams> = {}): SamplingParams {
    const g = this.generation;
    const defaults: Partial<SamplingParams> = {};
    if (g.doSample === false) defaults.temperature = 0;
    else {
      if (g.temperature !== null) defaults.temperature = g.temperature;
      if (g.topP !== null) defaults.topP = g.topP;
      if (g.topK !== null && g.topK > 0) defaults.topK = g.topK;
    }
    if (g.repetitionPenalty !== null) defaults.repetitionPenalty = g.repetitionPenalty;
    const clean = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Partial<SamplingParams>;
    return { ...DEFAULT_SAMPLING, ...defaults, ...clean };
  }

  /** A request's image-processor settings, checked against those the model's processor takes. */
  private processorKwargs(given: Record<string, unknown> | undefined): Record<string, unknown> {
    const accepted = this.processor.kwargs ?? [];
    for (const k of Object.keys(given ?? {})) {
      if (!accepted.includes(k)) {
        throw new InvalidRequestError(`mm_processor_kwargs.${k} is not a setting of this model's image processor${accepted.length ? ` (it takes ${accepted.join(', ')})` : ' (it takes none)'}`, 'mm_processor_kwargs');
      }
    }
    return given ?? {};
  }

  /** The token the template writes for an image. */
  private get placeholderId(): number {
    return this.processor.placeholderTokenId ?? this.config.imageTokenId;
  }

  /** The prompt's ids with each image's placeholder replaced by the image's tokens, as the family lays them out. */
  private writeImages(ids: number[], prompt: string | null, encodeText: ((text: string) => number[]) | null, processed: ProcessedImage[], kwargs: Record<string, unknown>): number[] {
    const p = this.processor;
    if (p.expandText && prompt !== null && encodeText) return encodeText(p.expandText(prompt, processed, kwargs));
    if (p.expandText && !p.placeholderIds && processed.length > 0) {
      throw new InvalidRequestError("this model's processor writes images into the prompt text: give the prompt as text, not token ids", 'input_ids');
    }
    return expandImagePlaceholders(ids, this.placeholderId, processed.map((im) => p.placeholderIds?.(im) ?? im.numTokens));
  }

  /** Renders, tokenizes and loads images: everything before the engine thread. */
  async prepare(input: GenerateInput): Promise<PreparedRequest> {
    let prompt: string | null = null;
    let sources: ImageSource[] = [];
    let details: Array<string | undefined> = [];
    let ids: number[];
    // How the prompt's text becomes ids again once the images' text is written into it.
    let encodeText: ((text: string) => number[]) | null = null;
    if (input.messages) {
      const rendered = this.chatTemplate.renderChat(input.messages, {
        addGenerationPrompt: !input.continueFinalMessage,
        continueFinalMessage: input.continueFinalMessage,
        templateKwargs: input.chatTemplateKwargs,
        tools: input.tools,
      });
      prompt = rendered.prompt;
      sources = rendered.images.map((r) => r.url);
      details = rendered.images.map((r) => r.detail);
      encodeText = (t) => this.tokenizer.encodeChatPrompt(t);
      ids = encodeText(prompt);
    } else if (input.prompt !== undefined) {
      sources = input.images ?? [];
      prompt = input.prompt;
      encodeText = (t) => this.tokenizer.encode(t);
      const tag = this.processor.imageText;
      // A raw prompt without image placeholders gets one per image in front, as vLLM does.
      if (tag !== undefined && sources.length > 0 && !prompt.includes(tag)) prompt = `${sources.map(() => tag).join('\n')}\n${prompt}`;
      ids = encodeText(prompt);
      const present = ids.filter((t) => t === this.placeholderId).length;
      if (tag === undefined && present === 0 && sources.length > 0) {
        ids = [...sources.flatMap(() => this.config.rawImageTokens), ...ids];
        encodeText = null;
      }
    } else if (input.inputIds) {
      ids = input.inputIds;
      sources = input.images ?? [];
    } else {
      throw new InvalidRequestError('give messages, prompt or inputIds', 'messages');
    }
    if (ids.length === 0) throw new InvalidRequestError('the prompt is empty', input.inputField ?? (input.messages ? 'messages' : input.prompt !== undefined ? 'prompt' : 'input_ids'));
    const vocab = this.config.text.embedRows ?? this.config.text.vocabSize;
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
    if (bad !== undefined) {
      const field = input.inputField ?? (input.inputIds ? 'input_ids' : 'prompt');
      throw new InvalidRequestError(`${field}: token id ${bad} is outside the vocabulary (0..${vocab - 1})`, field);
    }
    const loaded = await loadImages(sources, this.imageLimits, this.decoded, input.signal);
    const kwargs = this.processorKwargs(input.processorKwargs);
    const processed = loaded.map((l, i) => this.processor.process(l.image, this.budgetFor(details[i], input.pixelBudget), this.takePixels, kwargs, { images: loaded.length }));
    ids = this.writeImages(ids, prompt, encodeText, processed, kwargs);
    const ranges = locateImages(ids, this.processor.imageTokenId ?? this.config.imageTokenId, processed.map((p) => p.numTokens));
    const images: ImageForEngine[] = processed.map((p, i) => ({
      pixelValues: p.pixelValues,
      grid: p.grid,
      start: ranges[i]!.start,
      numTokens: ranges[i]!.length,
      rowAt: ranges[i]!.rowAt,
      hash: loaded[i]!.hash,
    }));
    const sampling = this.resolveSampling(input.sampling);
    const n = ids.length;
    const ctx = this.info.contextLength;
    if (input.sampling?.maxNewTokens === undefined) sampling.maxNewTokens = Math.max(1, Math.min(sampling.maxNewTokens, ctx - n));
    validateSampling(sampling);
    if (n + sampling.maxNewTokens > ctx) {
      throw new InvalidRequestError(
        `this model's context length is ${ctx} tokens; the prompt has ${n} tokens and max_tokens is ${sampling.maxNewTokens} (${n + sampling.maxNewTokens} in all)`,
        'max_tokens',
      );
    }
    return { prompt, ids: Int32Array.from(ids), images, sampling };
  }

  /**
   * Runs a prepared request. With `reuse`, image pixels are copied to the engine
   * thread instead of moved, so the same prepared request can run again (n > 1).
   */
  async *stream(req: PreparedRequest, opts: { signal?: AbortSignal; reuse?: boolean } = {}): AsyncGenerator<GenerateChunk> {
    const signal = opts.signal;
    if (this.closed) throw new IrisError('the engine is shut down', { status: 503, type: 'ServiceUnavailableError' });
    const id = randomUUID();
    const queue: Array<Extract<FromWorker, { type: 'tokens' }> | IrisError> = [];
    let wake: (() => void) | null = null;
    const notify = () => {
      wake?.();
      wake = null;
    };
    this.pending.set(id, { push: (m) => (queue.push(m), notify()), fail: (e) => (queue.push(e), notify()) });
    const abort = () => this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
    signal?.addEventListener('abort', abort, { once: true });
    const transfer = opts.reuse ? [] : req.images.map((i) => i.pixelValues.buffer as ArrayBuffer);
    this.worker.postMessage({ type: 'generate', id, ids: req.ids, images: req.images, sampling: req.sampling } satisfies ToWorker, transfer);

    const detok = new IncrementalDetokenizer(this.tokenizer, { skipSpecialTokens: req.sampling.skipSpecialTokens });
    const stops = new StopStringMatcher(req.sampling.stop);
    let completion = 0;
    let done = false;
    try {
      while (!done) {
        if (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const m = queue.shift()!;
        if (m instanceof IrisError) throw m;
        const chunk: GenerateChunk = { text: '', tokenIds: [], logprobs: null, finishReason: null, matchedStop: null, usage: null, prompt: req.prompt };
        for (const t of m.tokens) {
          if (stops.stopped) break;
          completion++;
          chunk.tokenIds.push(t.tokenId);
          if (t.logprob !== null) (chunk.logprobs ??= []).push(this.logprobInfo(t));
          let piece = detok.push(t.tokenId);
          if (m.finish && t === m.tokens[m.tokens.length - 1]) piece += detok.flush();
          const r = stops.push(piece);
          chunk.text += r.text;
          if (r.stopped) {
            chunk.finishReason = 'stop';
            chunk.matchedStop = r.stopped;
            if (!m.finish) abort();
          }
        }
        if (m.finish && !stops.stopped) {
          chunk.text += stops.flush();
          chunk.finishReason = m.finish;
          chunk.matchedStop = m.matchedStop;
        }
        if (chunk.finishReason) {
          chunk.usage = { promptTokens: m.promptTokens, completionTokens: completion, totalTokens: m.promptTokens + completion, cachedTokens: m.cachedTokens };
          done = true;
        }
        if (chunk.tokenIds.length > 0 || done) yield chunk;
      }
    } finally {
      signal?.removeEventListener('abort', abort);
      if (!done) abort();
      // Keep listening until the worker confirms, so late messages find no stale consumer.
      this.pending.delete(id);
    }
  }

  private logprobInfo(t: StepToken): TokenLogprobInfo {
    const tok = (i: number) => this.tokenizer.decode([i], { skipSpecialTokens: false });
    const bytes = (i: number) => [...this.tokenizer.tokenBytes(i)];
    return {
      tokenId: t.tokenId,
      token: tok(t.tokenId),
      bytes: bytes(t.tokenId),
      logprob: t.logprob!,
      top: (t.top ?? []).map((x) => ({ tokenId: x.tokenId, token: tok(x.tokenId), bytes: bytes(x.tokenId), logprob: x.logprob })),
    };
  }

  /** Running/waiting counts and KV pool use, from the engine thread. */
  stats(): Promise<EngineStats> {
    return new Promise((resolve) => {
      this.statsWaiters.push(resolve);
      this.worker.postMessage({ type: 'stats' } satisfies ToWorker);
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'tokens') {
      for (const b of m.spentPixels ?? []) this.pixelPool.give(b);
      this.pending.get(m.id)?.push(m);
    } else if (m.type === 'error') {
      const err = new IrisError(m.message, { status: m.status, type: m.errorType });
      if (m.id) this.pending.get(m.id)?.fail(err);
      else this.failAll(err);
    } else if (m.type === 'stats') {
      const waiters = this.statsWaiters;
      this.statsWaiters = [];
      for (const w of waiters) w(m.stats);
    }
  }

  private failAll(e: IrisError): void {
    for (const p of this.pending.values()) p.fail(e);
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.worker.postMessage({ type: 'shutdown' } satisfies ToWorker);
    await new Promise((r) => this.worker.once('exit', r));
  }
}
