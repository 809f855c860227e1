import { ModelLoadError } from '../../errors.js';
import { ImageProcessor } from '../../multimodal/processor.js';
import type { TextTokenizer } from '../../tokenizer/tokenizer.js';
import { ModelConfig } from '../config.js';
import { asDeepseekVL2Config } from './config.js';
import { deepseekVL2ImageTokenCount, loadDeepseekVL2ProcessorConfig, preprocessDeepseekVL2 } from './imageProcessing.js';

/**
 * DeepseekVLV2Processor: a global view and local tiles of the best candidate resolution (a
 * request with more than two images gets one tile each, as the reference does), and the
 * prompt's `<image>` token repeated once per row of the image's layout (tiles' features,
 * newlines, the view separator). `grid`: [width tiles, height tiles].
 */
export function deepseekVL2ImageProcessor(modelDir: string, config: ModelConfig, tokenizer: TextTokenizer): ImageProcessor {
  const c = asDeepseekVL2Config(config);
  const cfg = loadDeepseekVL2ProcessorConfig(modelDir);
  if (cfg.imageSize !== c.vision.imageSize) throw new ModelLoadError(`processor_config.json tiles of ${cfg.imageSize} differ from vision_config.image_size ${c.vision.imageSize}`);
  const image = tokenizer.tokenToId(cfg.imageToken);
  if (image === undefined) throw new ModelLoadError(`the tokenizer has no ${cfg.imageToken} token`);
  return {
    imageTokenId: image,
    placeholderTokenId: image,
    // Tiles follow the image's shape: the token budget does not apply.
    process(img, _budget, alloc, _kwargs, request) {
      const r = preprocessDeepseekVL2(img, cfg, { cropping: (request?.images ?? 1) <= 2, alloc });
      return { pixelValues: r.pixelValues, grid: [r.grid.widthTiles, r.grid.heightTiles], numTokens: deepseekVL2ImageTokenCount(r.grid, cfg) };
    },
  };
}
