import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../errors.js';
import { RgbImage } from './image.js';

/**
 * Default cap on the tokens of one image where the processor resizes freely. The vision
 * tower's cost grows with the image's pixels; on a CPU the model's own limit (16,384 tokens
 * for Qwen2.5-VL) would let one phone photo take minutes before the first token.
 */
export const DEFAULT_IMAGE_MAX_TOKENS = 512;

/** Per-request knobs of the pixel budget (min/max pixels after resizing). */
export interface PixelBudget {
  minPixels?: number;
  maxPixels?: number;
  /** Most placeholder tokens the image may take (the processor turns it into pixels). */
  maxTokens?: number;
}

/** Model-ready pixels of one image and the number of embedding rows it gives the decoder. */
export interface ProcessedImage {
  pixelValues: Float32Array;
  /** The family's layout numbers (Qwen2-VL: [t, h, w] patches; LLaVA: [height, width]). */
  grid: number[];
  /** Embedding rows (tokens equal to the model's image token) the image fills. */
  numTokens: number;
}

/**
 * A family's image preprocessing and how it writes an image into the prompt. By default the
 * template's one image token becomes `numTokens` image tokens; a family whose processor edits
 * the prompt text (markers, separators, slices around the image tokens) gives `expandText`, and
 * `placeholderIds` for prompts that come as token ids.
 */
export interface ImageProcessor {
  /**
   * `alloc` gives the pixel-values array (e.g. from a PixelBufferPool); its old contents do not
   * matter. `kwargs`: the request's settings for the processor (names in `kwargs`), checked by the caller.
   */
  process(img: RgbImage, budget?: PixelBudget, alloc?: (length: number) => Float32Array, kwargs?: Record<string, unknown>, request?: { images: number }): ProcessedImage;
  /** The rendered prompt with each image's marker replaced by the image's full text, before tokenizing. */
  expandText?(prompt: string, images: readonly ProcessedImage[], kwargs?: Record<string, unknown>): string;
  /** The request settings (mm_processor_kwargs) the processor takes. */
  kwargs?: readonly string[];
  /** Tokens an image may take when the user sets no cap (absent: the processor's own sizes). */
  defaultMaxTokens?: number;
  /** The token the chat template writes for an image (default: the model's image token). */
  placeholderTokenId?: number;
  /** The token whose embeddings the image's rows replace, when the tokenizer, not config.json, names it. */
  imageTokenId?: number;
  /**
   * The text that stands for an image in a prompt (e.g. `(<image>./</image>)`): written for each
   * image of a raw prompt that has none, and, for chat templates that take string content, in
   * the message in the order of its parts, parts joined by newlines (as the model's own chat
   * code builds its messages).
   */
  imageText?: string;
  /** The ids replacing one image placeholder token in a tokenized prompt (default: numTokens image tokens). */
  placeholderIds?(image: ProcessedImage): number[];
}

/** Settings of a model's image processing chosen when the model loads. */
export interface ImageProcessorOptions {
  /** Gemma 3's pan-and-scan (extra crops of long images), as `do_pan_and_scan`; default the checkpoint's (off). */
  panAndScan?: boolean;
}

/** processor_config.json (the multimodal processor's settings), or {} when the checkpoint has none. */
export function readProcessorConfig(modelDir: string): Record<string, unknown> {
  const file = join(modelDir, 'processor_config.json');
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}
