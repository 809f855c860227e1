/** Iris's public API: the offline engine and the types it speaks. */
export { Engine } from './engine/engine.js';
export type {
  EngineLoadOptions,
  GenerateInput,
  GenerateResult,
  GenerateChunk,
  ImageSource,
  TokenLogprobInfo,
  Usage,
} from './engine/engine.js';
export type { SamplingParams } from './engine/samplingParams.js';
export type { EngineOptions, EngineStats, FinishReason, ModelInfo } from './engine/messages.js';
export type { ChatMessage, ContentPart } from './tokenizer/chatMessages.js';
export type { PixelBudget } from './multimodal/processor.js';
export { IrisError, InvalidRequestError, ImageError, ModelLoadError } from './errors.js';
