import { DEFAULT_IMAGE_MAX_TOKENS, ImageProcessor } from '../../multimodal/processor.js';
import { loadQwen2VLProcessorConfig, preprocessQwen2VL } from './imageProcessing.js';

/** Qwen2-VL's processor: a per-request pixel budget, one image token per merged patch. */
export function qwen2VLImageProcessor(modelDir: string): ImageProcessor {
  const cfg = loadQwen2VLProcessorConfig(modelDir);
  return {
    defaultMaxTokens: DEFAULT_IMAGE_MAX_TOKENS,
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
