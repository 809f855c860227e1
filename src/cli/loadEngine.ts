import { Engine, EngineLoadOptions } from '../engine/engine.js';
import { renderDownloadProgress } from '../hub/index.js';
import { loadProgress } from './progress.js';

/** The flags every command that loads a model takes. */
export interface ModelCliOptions {
  modelPath: string;
  revision?: string;
  quantization?: EngineLoadOptions['quantization'];
  memFractionStatic?: number;
  imageMaxTokens?: number;
  panAndScan?: boolean;
  threads?: number;
  chatTemplate?: string;
  /** Print only warnings among the load notices (e.g. --log-level warning). */
  quiet?: boolean;
}

/**
 * Loads the engine with download and load progress on the terminal, and the memory
 * plan (which weights, how much KV cache) as one line on stderr.
 */
export async function loadEngine(o: ModelCliOptions, more: Omit<EngineLoadOptions, 'modelPath'> = {}): Promise<Engine> {
  const progress = loadProgress(`Loading ${o.modelPath}`);
  const engine = await Engine.load({
    modelPath: o.modelPath,
    revision: o.revision,
    quantization: o.quantization,
    memFractionStatic: o.memFractionStatic,
    imageMaxTokens: o.imageMaxTokens,
    panAndScan: o.panAndScan,
    threads: o.threads,
    chatTemplate: o.chatTemplate,
    onDownloadProgress: renderDownloadProgress(),
    onNotice: (line, level) => {
      if (level === 'warning' || !o.quiet) process.stderr.write(`iris: ${line}\n`);
    },
    onProgress: (w) => progress.step(w),
    ...more,
  });
  progress.done();
  return engine;
}
