import { ImageProcessor } from '../../multimodal/processor.js';
import { ModelConfig } from '../config.js';
import { asMllamaConfig } from './config.js';
import { loadMllamaProcessorConfig, preprocessMllama } from './imageProcessing.js';

/**
 * MllamaProcessor: an image is tiled (up to max_image_tiles) and stays one `<|image|>` token
 * in the prompt; the text reads it through cross-attention. `grid` is [aspect ratio id, tiles].
 */
export function mllamaImageProcessor(modelDir: string, config: ModelConfig): ImageProcessor {
  const c = asMllamaConfig(config);
  const cfg = loadMllamaProcessorConfig(modelDir);
  if (cfg.tileSize !== c.vision.imageSize || cfg.maxImageTiles !== c.vision.maxNumTiles) {
    throw new Error(`preprocessor_config.json (tile ${cfg.tileSize}, ${cfg.maxImageTiles} tiles) does not match config.json's vision_config (image_size ${c.vision.imageSize}, max_num_tiles ${c.vision.maxNumTiles})`);
  }
  return {
    // The tile count is the processor's choice for the image's shape: the token budget does not apply.
    process(img, _budget, alloc) {
      const r = preprocessMllama(img, cfg, { alloc });
      return { pixelValues: r.pixelValues, grid: [r.aspectRatioId, r.numTiles], numTokens: 0 };
    },
    placeholderIds: () => [c.imageTokenId],
  };
}
