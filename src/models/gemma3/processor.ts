import { ImageProcessor, ImageProcessorOptions, ProcessedImage } from '../../multimodal/processor.js';
import type { TextTokenizer } from '../../tokenizer/tokenizer.js';
import { InvalidRequestError } from '../../errors.js';
import { ModelConfig } from '../config.js';
import { asGemma3Config } from './config.js';
import { loadGemma3ProcessorConfig, preprocessGemma3 } from './imageProcessing.js';


/**
 * Gemma3Processor: each image (and each pan-and-scan crop) becomes mm_tokens_per_image soft
 * tokens between `<start_of_image>` and `<end_of_image>`, with blank lines around, written into
 * the prompt text before tokenizing (so the newlines merge with their neighbours as the
 * reference's do). An image with crops is introduced by the reference's sentence.
 */
export function gemma3ImageProcessor(modelDir: string, config: ModelConfig, tokenizer: TextTokenizer, opts: ImageProcessorOptions = {}): ImageProcessor {
  const c = asGemma3Config(config);
  const cfg = loadGemma3ProcessorConfig(modelDir);
  const name = (id: number) => {
    const t = tokenizer.idToToken(id);
    if (t === undefined) throw new InvalidRequestError(`token ${id} is not in the vocabulary`);
    return t;
  };
  const boi = name(c.boiTokenId);
  const full = `\n\n${boi}${name(c.imageTokenId).repeat(c.mmTokensPerImage)}${name(c.eoiTokenId)}\n\n`;
  // The image's text with its crops' markers, before every marker is expanded.
  const markers = (im: ProcessedImage) => {
    const crops = im.grid[0]! - 1;
    return crops > 0 ? `Here is the original image ${boi} and here are some crops to help you see better ${Array(crops).fill(boi).join(' ')}` : boi;
  };
  return {
    placeholderTokenId: c.boiTokenId,
    kwargs: ['do_pan_and_scan'],
    process(img, _budget, alloc, kwargs = {}) {
      const pas = kwargs.do_pan_and_scan;
      if (pas !== undefined && typeof pas !== 'boolean') throw new InvalidRequestError('mm_processor_kwargs.do_pan_and_scan must be a boolean', 'mm_processor_kwargs');
      // Every piece is resized to the tower's square: the token budget does not apply.
      const r = preprocessGemma3(img, cfg, { alloc, doPanAndScan: pas ?? opts.panAndScan });
      return { pixelValues: r.pixelValues, grid: [r.pieces], numTokens: r.pieces * c.mmTokensPerImage };
    },
    expandText(prompt, images) {
      const parts = prompt.split(boi);
      if (parts.length - 1 !== images.length) {
        throw new InvalidRequestError(`the prompt has ${parts.length - 1} image placeholder(s) but ${images.length} image(s) were given`, 'messages');
      }
      const withCrops = parts.reduce((acc, part, i) => acc + markers(images[i - 1]!) + part);
      return withCrops.split(boi).join(full);
    },
    placeholderIds(im) {
      return tokenizer.encode(markers(im).split(boi).join(full));
    },
  };
}
