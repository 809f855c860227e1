import { ModelLoadError } from '../../errors.js';
import { ImageProcessor } from '../../multimodal/processor.js';
import type { TextTokenizer } from '../../tokenizer/tokenizer.js';
import { ModelConfig } from '../config.js';
import { asMiniCPMVConfig } from './config.js';
import { MINICPMV_IMAGE_TAG, expandMiniCPMVPrompt, loadMiniCPMVProcessorConfig, minicpmvImagePlaceholder, preprocessMiniCPMV } from './imageProcessing.js';

/**
 * MiniCPMVProcessor: an image becomes its source picture and slices, and the prompt's
 * `(<image>./</image>)` tag becomes their placeholders (`<image>`/`<slice>` runs of `<unk>`,
 * image ids, newlines between slice rows) in the text before tokenizing. The `<unk>` tokens take
 * the resampler's rows. `grid`: [pieces, cols, rows, h0, w0, h1, w1, ...] (cols = rows = 0 when
 * the image is not sliced; each piece's size in patches).
 */
export function minicpmvImageProcessor(modelDir: string, config: ModelConfig, tokenizer: TextTokenizer): ImageProcessor {
  const c = asMiniCPMVConfig(config);
  const cfg = loadMiniCPMVProcessorConfig(modelDir);
  if (cfg.imageFeatureSize !== c.queryNum) {
    throw new ModelLoadError(`preprocessor_config.json image_feature_size ${cfg.imageFeatureSize} differs from config.json query_num ${c.queryNum}`);
  }
  const unk = tokenizer.tokenToId(cfg.tokens.unk);
  if (unk === undefined) throw new ModelLoadError(`the tokenizer has no ${cfg.tokens.unk} token for image features`);
  return {
    imageTokenId: unk,
    imageText: MINICPMV_IMAGE_TAG,
    // Slicing follows the image's shape and max_slice_nums: the token budget does not apply.
    process(img, _budget, alloc) {
      const r = preprocessMiniCPMV(img, cfg);
      const total = r.slices.reduce((a, s) => a + s.pixelValues.length, 0);
      const pixelValues = alloc ? alloc(total) : new Float32Array(total);
      let off = 0;
      for (const s of r.slices) {
        pixelValues.set(s.pixelValues, off);
        off += s.pixelValues.length;
      }
      const grid = [r.slices.length, r.grid?.[0] ?? 0, r.grid?.[1] ?? 0, ...r.tgtSizes.flat()];
      return { pixelValues, grid, numTokens: r.slices.length * c.queryNum };
    },
    expandText(prompt, images) {
      const parts = prompt.split(MINICPMV_IMAGE_TAG);
      if (parts.length - 1 !== images.length) return expandMiniCPMVPrompt(prompt, [], cfg);
      return parts.reduce((acc, part, i) => {
        const g = images[i - 1]!.grid;
        return acc + minicpmvImagePlaceholder(g[1] ? [g[1], g[2]!] : null, cfg, { imageIndex: i - 1 }) + part;
      });
    },
  };
}
