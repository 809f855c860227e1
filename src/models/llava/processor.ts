import { ImageProcessor, PixelBudget, readProcessorConfig } from '../../multimodal/processor.js';
import { LlavaNextProcessorConfig, llavaNextTokens, loadLlavaNextProcessorConfig, preprocessLlavaNext } from './anyresProcessing.js';
import { ClipProcessorConfig, loadClipProcessorConfig, preprocessClip } from './clipProcessing.js';

/** The image processors of LLaVA-1.5 (one crop), LLaVA-NeXT and OneVision (anyres tiles). */
export function llavaImageProcessor(modelDir: string, modelType: string): ImageProcessor {
  return modelType === 'llava' ? clipImageProcessor(modelDir) : anyresImageProcessor(modelDir, modelType === 'llava_onevision');
}

function clipImageProcessor(modelDir: string): ImageProcessor {
  const cfg = loadClipProcessorConfig(modelDir);
  const tokens = llavaImageTokens(readProcessorConfig(modelDir), cfg);
  return {
    // LLaVA-1.5 sees every image at the crop size: the token budget does not apply.
    process(img, _budget, alloc) {
      const r = preprocessClip(img, cfg, alloc);
      return { pixelValues: r.pixelValues, grid: [r.height, r.width], numTokens: tokens };
    },
  };
}

function anyresImageProcessor(modelDir: string, onevision: boolean): ImageProcessor {
  const cfg = loadLlavaNextProcessorConfig(modelDir);
  const p = readProcessorConfig(modelDir);
  // Features per tile side: crop / patch (NeXT), or sqrt(num_image_tokens) (OneVision, which
  // also downscales large maps to 9 tiles' worth, a number its processor hard-codes).
  const g = onevision ? Math.floor(Math.sqrt(Number(p.num_image_tokens ?? 729))) : cfg.crop.height / patchSize(p);
  const maxPatches = onevision ? 9 : null;
  return {
    process(img, budget = {}) {
      const c = withinBudget(cfg, budget, (pc) => llavaNextTokens(img.height, img.width, pc, g, maxPatches));
      const r = preprocessLlavaNext(img, c);
      return { pixelValues: r.pixelValues, grid: [img.height, img.width, ...r.grid], numTokens: llavaNextTokens(img.height, img.width, c, g, maxPatches) };
    },
  };
}

/**
 * The anyres canvases a request's budget allows: those of at most `maxPixels` whose tokens for
 * this image are at most `maxTokens`; when none is, the one giving the fewest tokens. Without a
 * budget the processor's own list, as the reference has it.
 */
function withinBudget(cfg: LlavaNextProcessorConfig, budget: PixelBudget, tokens: (c: LlavaNextProcessorConfig) => number): LlavaNextProcessorConfig {
  if (!budget.maxPixels && !budget.maxTokens) return cfg;
  const scored = cfg.pinpoints.map((pin) => ({ pin, tokens: tokens({ ...cfg, pinpoints: [pin] }) }));
  const fits = scored.filter((s) => (!budget.maxPixels || s.pin[0] * s.pin[1] <= budget.maxPixels) && (!budget.maxTokens || s.tokens <= budget.maxTokens));
  if (fits.length === cfg.pinpoints.length) return cfg;
  if (fits.length > 0) return { ...cfg, pinpoints: fits.map((s) => s.pin) };
  const fewest = scored.reduce((a, b) => (b.tokens < a.tokens || (b.tokens === a.tokens && b.pin[0] * b.pin[1] < a.pin[0] * a.pin[1]) ? b : a));
  return { ...cfg, pinpoints: [fewest.pin] };
}

/** processor_config.json's patch_size (the vision tower's), 14 when absent. */
function patchSize(p: Record<string, unknown>): number {
  return typeof p.patch_size === 'number' ? p.patch_size : 14;
}

/**
 * LlavaProcessor's image token count: (crop / patch)^2 plus num_additional_image_tokens (the
 * class token), less one when the "default" feature strategy drops it (processor_config.json).
 */
function llavaImageTokens(p: Record<string, unknown>, cfg: ClipProcessorConfig): number {
  const patch = patchSize(p);
  const additional = typeof p.num_additional_image_tokens === 'number' ? p.num_additional_image_tokens : 1;
  const dropCls = (p.vision_feature_select_strategy ?? 'default') === 'default';
  return Math.floor(cfg.crop.height / patch) * Math.floor(cfg.crop.width / patch) + additional - (dropCls ? 1 : 0);
}
