import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { MllamaConfig, asMllamaConfig } from './config.js';
import { mllamaCrossFeeds, mllamaVisibility } from './crossInputs.js';
import { MLLAMA_VISION, buildMllamaVisionGraph } from './vision.js';

/** transformers 4.50 checkpoints name the parts `vision_model.*`, `language_model.model.*`; later ones nest them under `model.`. */
function weightNames(store: WeightStore) {
  if (store.has('model.language_model.embed_tokens.weight')) {
    return { vision: 'model.vision_model', projector: 'model.multi_modal_projector', text: 'model.language_model', lmHead: 'lm_head.weight' };
  }
  return { vision: 'vision_model', projector: 'multi_modal_projector', text: 'language_model.model', lmHead: 'language_model.lm_head.weight' };
}

/**
 * Llama 3.2 Vision: a tiled vision tower whose output the Llama 3.1 decoder reads through
 * gated cross-attention layers. An image stays one `<|image|>` token in the prompt; its
 * encoding (the cross-attention layers' K/V) is computed once and kept with the sequence.
 */
export class MllamaModel extends TowerDecoderModel<MllamaConfig> {
  readonly keepsImageStates = true;

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asMllamaConfig(modelConfig);
    const names = weightNames(store);
    const quant = towerDecoderQuant(store, opts);
    return {
      vision: buildMllamaVisionGraph(store, config, names, quant.vision),
      text: buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: false }, opts.pageSize ?? 16, quant.text),
    };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<MllamaModel> {
    const config = asMllamaConfig(modelConfig);
    return new MllamaModel(config, await loadTowerDecoder(MllamaModel.graphs(store, config, opts), config, opts, mllamaCrossFeeds(config)));
  }

  /** Every image fills all max_num_tiles slots (empty ones are zeros): one tower run over all of them. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const { maxNumTiles: T, imageSize: S } = this.config.vision;
    const per = T * 3 * S * S;
    const pixels = new Float32Array(images.length * per);
    images.forEach((img, i) => pixels.set(img.pixelValues, i * per));
    const ids = BigInt64Array.from(images.map((img) => BigInt(img.grid[0]!)));
    const mask = new Float32Array(images.length * T);
    images.forEach((img, i) => mask.fill(1, i * T, i * T + img.grid[1]!));
    const out = (await this.vision.run({
      [MLLAMA_VISION.pixels]: { data: pixels, dims: [images.length, T, 3, S, S] },
      [MLLAMA_VISION.ratioIds]: { data: ids, dims: [images.length] },
      [MLLAMA_VISION.ratioMask]: { data: mask, dims: [images.length, T] },
    }))[MLLAMA_VISION.output]!.data;
    const each = out.length / images.length;
    return images.map((_, i) => out.slice(i * each, (i + 1) * each));
  }

  promptImageVisibility(ids: ArrayLike<number>, images: Array<{ start: number }>): Int32Array {
    return mllamaVisibility(ids, images);
  }

}
