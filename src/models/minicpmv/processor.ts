import { InvalidRequestError, ModelLoadError } from '../../errors.js';
import { ImageProcessor } from '../../multimodal/processor.js';
import type { TextTokenizer } from '../../tokenizer/tokenizer.js';
import { ModelConfig } from '../config.js';
import { asMiniCPMVConfig } from './config.js';
import { MINICPMV_IMAGE_TAG, loadMiniCPMVProcessorConfig, minicpmvImagePlaceholder, preprocessMiniCPMV } from './imageProcessing.js';

/** A request's slice cap, or undefined when not given. */
function positiveInt(v: unknown, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 64) throw new InvalidRequestError(`mm_processor_kwargs.${key} must be an integer from 1 to 64`, 'mm_processor_kwargs');
  return v as number;
}

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
    kwargs: ['max_slice_nums', 'use_image_id'],
    // Slicing follows the image's shape and max_slice_nums: the token budget does not apply.
    process(img, _budget, alloc, kwargs = {}) {
      const r = preprocessMiniCPMV(img, cfg, { maxSliceNums: positiveInt(kwargs.max_slice_nums, 'max_slice_nums') });
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
    expandText(prompt, images, kwargs = {}) {
      const parts = prompt.split(MINICPMV_IMAGE_TAG);
      if (parts.length - 1 !== images.length) {
        throw new InvalidRequestError(`the prompt has ${parts.length - 1} image tag(s) ${MINICPMV_IMAGE_TAG} but ${images.length} image(s) were given`, 'messages');
      }
      const useImageId = kwargs.use_image_id;
      if (useImageId !== undefined && typeof useImageId !== 'boolean') throw new InvalidRequestError('mm_processor_kwargs.use_image_id must be a boolean', 'mm_processor_kwargs');
      return parts.reduce((acc, part, i) => {
        const g = images[i - 1]!.grid;
        return acc + minicpmvImagePlaceholder(g[1] ? [g[1], g[2]!] : null, cfg, { imageIndex: i - 1, useImageId }) + part;
      });
    },
  };
}
