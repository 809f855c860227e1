import { ModelLoadError } from '../errors.js';
import { RgbImage } from './image.js';
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
  grid: [number, number, number];
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
  throw new ModelLoadError(`no image processor for model type ${modelType}`);
}
