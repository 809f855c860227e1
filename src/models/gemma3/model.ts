import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { Gemma3Config, asGemma3Config } from './config.js';
import { GEMMA3_VISION, buildGemma3VisionGraph } from './vision.js';

/** Checkpoints of transformers 4.50 name the parts `language_model.model.*`; later ones nest them under `model.`. */
function weightNames(store: WeightStore) {
  if (store.has('model.language_model.embed_tokens.weight')) {
    return { vision: 'model.vision_tower.vision_model', projector: 'model.multi_modal_projector', text: 'model.language_model', lmHead: 'lm_head.weight' };
  }
  return { vision: 'vision_tower.vision_model', projector: 'multi_modal_projector', text: 'language_model.model', lmHead: 'language_model.lm_head.weight' };
}

/**
 * Gemma 3: a SigLIP tower pooled to a fixed number of tokens per image, and a decoder of
 * sliding-window and global layers with 1-D RoPE. The prompt's image tokens attend to each
 * other both ways.
 */
export class Gemma3Model extends TowerDecoderModel<Gemma3Config> {
  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asGemma3Config(modelConfig);
    const names = weightNames(store);
    const quant = towerDecoderQuant(store, opts);
    return {
      vision: buildGemma3VisionGraph(store, config, names, quant.vision),
      text: buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: false }, opts.pageSize ?? 16, quant.text),
    };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<Gemma3Model> {
    const config = asGemma3Config(modelConfig);
    return new Gemma3Model(config, await loadTowerDecoder(Gemma3Model.graphs(store, config, opts), config, opts));
  }

  /** Every image (and pan-and-scan crop) is one square piece: one tower run over all of them. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const per = await this.encodePieces(images, this.config.vision.imageSize, { input: GEMMA3_VISION.pixels, output: GEMMA3_VISION.output });
    return per.map((rows) => rows.slice());
  }

  /**
   * transformers 4.50's token_type_ids mask: during the prompt's pass every image token sees
   * every image token of the prompt (also of other images), so they form one group.
   */
  promptGroups(ids: ArrayLike<number>): Int32Array | null {
    const groups = new Int32Array(ids.length);
    let any = false;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === this.config.imageTokenId) {
        groups[i] = 1;
        any = true;
      }
    }
    return any ? groups : null;
  }

}
