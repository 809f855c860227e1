import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, TowerDecoderParts, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { DeepseekVL2Config, asDeepseekVL2Config } from './config.js';
import { DSVL2_NEWLINE, deepseekVL2TokenLayout } from './imageProcessing.js';
import { DSVL2_VISION, buildDeepseekVisionGraph } from './vision.js';

/**
 * DeepSeek-VL2: SigLIP over a global view and local tiles, a 2x2-downsampling projector, and a
 * DeepseekV2 decoder (dense first layers, then mixture-of-experts MLPs). An image's rows are its
 * views' features laid out in rows, each row ended by image_newline, the views parted by
 * view_seperator. `grid`: [width tiles, height tiles].
 */
export class DeepseekVL2Model extends TowerDecoderModel<DeepseekVL2Config> {
  private constructor(
    config: DeepseekVL2Config,
    parts: TowerDecoderParts,
    private readonly newline: Float32Array,
    private readonly separator: Float32Array,
  ) {
    super(config, parts);
  }

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asDeepseekVL2Config(modelConfig);
    const quant = towerDecoderQuant(store, opts, config.text);
    return {
      vision: buildDeepseekVisionGraph(store, config, quant.vision),
      text: buildDecoderGraph(store, config.text, { model: 'language.model', lmHead: 'language.lm_head.weight', qkvBias: false }, opts.pageSize ?? 16, quant.text),
    };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<DeepseekVL2Model> {
    const config = asDeepseekVL2Config(modelConfig);
    const parts = await loadTowerDecoder(DeepseekVL2Model.graphs(store, config, opts), config, opts);
    const D = config.text.hiddenSize;
    return new DeepseekVL2Model(config, parts, store.readFloat32('image_newline', [D]), store.readFloat32('view_seperator', [D]));
  }

  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const S = this.config.vision.imageSize;
    // The global view and the local tiles: the pixel arrays may be longer (pooled buffers).
    const tiles = images.map((img) => 1 + img.grid[0]! * img.grid[1]!);
    const feats = await this.encodePieces(images, S, { input: DSVL2_VISION.pixels, output: DSVL2_VISION.output }, tiles);
    const D = this.config.text.hiddenSize;
    const cfg = {
      imageSize: S,
      patchSize: this.config.vision.patchSize,
      downsampleRatio: this.config.projector.downsampleRatio,
      globalViewPos: (this.config.raw.global_view_pos === 'tail' ? 'tail' : 'head') as 'head' | 'tail',
    };
    return images.map((img, i) => {
      const layout = deepseekVL2TokenLayout({ widthTiles: img.grid[0]!, heightTiles: img.grid[1]! }, cfg);
      const rows = new Float32Array(layout.numTokens * D);
      layout.source.forEach((src, t) => {
        const v = src === DSVL2_NEWLINE ? this.newline : src < 0 ? this.separator : feats[i]!.subarray(src * D, (src + 1) * D);
        rows.set(v, t * D);
      });
      return rows;
    });
  }
}
