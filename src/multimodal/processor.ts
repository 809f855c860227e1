import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../errors.js';
import { RgbImage } from './image.js';
import { ClipProcessorConfig, loadClipProcessorConfig, preprocessClip } from './processors/clip.js';
import { llavaNextTokens, loadLlavaNextProcessorConfig, preprocessLlavaNext } from './processors/llavaNext.js';
import { loadQwen2VLProcessorConfig, preprocessQwen2VL } from './processors/qwen2vl.js';

/** Per-request knobs of the pixel budget (min/max pixels after resizing). */
export interface PixelBudget {
  minPixels?: number;
  maxPixels?: number;
  /** Most placeholder tokens the image may take (the processor turns it into pixels). */
  maxTokens?: number;
}

/** Model-ready pixels of one image and the number of placeholder tokens it takes. */
export interface ProcessedImage {
  pixelValues: Float32Array;
  /** The family's layout numbers (Qwen2-VL: [t, h, w] patches; LLaVA: [height, width]). */
  grid: number[];
  numTokens: number;
}

export interface ImageProcessor {
  /** `alloc` gives the pixel-values array (e.g. from a PixelBufferPool); its old contents do not matter. */
  process(img: RgbImage, budget?: PixelBudget, alloc?: (length: number) => Float32Array): ProcessedImage;
}

/** The image processor of a model family, configured from its preprocessor_config.json. */
export function loadImageProcessor(modelDir: string, modelType: string): ImageProcessor {
  if (modelType === 'qwen2_vl' || modelType === 'qwen2_5_vl') {
    const cfg = loadQwen2VLProcessorConfig(modelDir);
    return {
      process(img, budget = {}, alloc) {
        // One image token covers a (patch * merge)^2 square of pixels.
        const unit = (cfg.patchSize * cfg.mergeSize) ** 2;
        let maxPixels = budget.maxPixels ?? cfg.maxPixels;
        if (budget.maxTokens) maxPixels = Math.min(maxPixels, budget.maxTokens * unit);
        const minPixels = Math.min(budget.minPixels ?? cfg.minPixels, maxPixels);
        const r = preprocessQwen2VL(img, cfg, { minPixels, maxPixels }, alloc);
        return { pixelValues: r.pixelValues, grid: r.gridThw, numTokens: r.numImageTokens };
      },
    };
  }
  if (modelType === 'llava') {
    const cfg = loadClipProcessorConfig(modelDir);
    const tokens = llavaImageTokens(modelDir, cfg);
    return {
      // LLaVA-1.5 sees every image at the crop size: the token budget does not apply.
      process(img, _budget, alloc) {
        const r = preprocessClip(img, cfg, alloc);
        return { pixelValues: r.pixelValues, grid: [r.height, r.width], numTokens: tokens };
      },
    };
  }
  if (modelType === 'llava_next' || modelType === 'llava_onevision') {
    const cfg = loadLlavaNextProcessorConfig(modelDir);
    const p = processorConfig(modelDir);
    // Features per tile side: crop / patch (NeXT), or sqrt(num_image_tokens) (OneVision, which
    // also downscales large maps to 9 tiles' worth, a number its processor hard-codes).
    const onevision = modelType === 'llava_onevision';
    const g = onevision ? Math.floor(Math.sqrt(Number(p.num_image_tokens ?? 729))) : cfg.crop.height / processorPatchSize(modelDir);
    return {
      // The image keeps its own size: the anyres canvases decide its tokens, not the budget.
      process(img) {
        const r = preprocessLlavaNext(img, cfg);
        return { pixelValues: r.pixelValues, grid: [img.height, img.width, ...r.grid], numTokens: llavaNextTokens(img.height, img.width, cfg, g, onevision ? 9 : null) };
      },
    };
  }
  throw new ModelLoadError(`no image processor for model type ${modelType}`);
}

/** processor_config.json's patch_size (the vision tower's), 14 when absent. */
function processorPatchSize(modelDir: string): number {
  const p = processorConfig(modelDir);
  return typeof p.patch_size === 'number' ? p.patch_size : 14;
}

/** processor_config.json (the multimodal processor's settings), or {} when the checkpoint has none. */
function processorConfig(modelDir: string): Record<string, unknown> {
  const file = join(modelDir, 'processor_config.json');
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * LlavaProcessor's image token count: (crop / patch)^2 plus num_additional_image_tokens (the
 * class token), less one when the "default" feature strategy drops it (processor_config.json).
 */
function llavaImageTokens(modelDir: string, cfg: ClipProcessorConfig): number {
  const p = processorConfig(modelDir);
  const patch = typeof p.patch_size === 'number' ? p.patch_size : 14;
  const additional = typeof p.num_additional_image_tokens === 'number' ? p.num_additional_image_tokens : 1;
  const dropCls = (p.vision_feature_select_strategy ?? 'default') === 'default';
  return Math.floor(cfg.crop.height / patch) * Math.floor(cfg.crop.width / patch) + additional - (dropCls ? 1 : 0);
}
