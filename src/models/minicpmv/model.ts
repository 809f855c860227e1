import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { MiniCPMVConfig, asMiniCPMVConfig } from './config.js';
import { navitPositionIds, sincos2d } from './positions.js';
import { MINICPMV_VISION, buildMiniCPMVVisionGraph } from './vision.js';

/**
 * MiniCPM-V 2.6: an image is a source picture and its slices, each of its own size in patches,
 * encoded by a NaViT SigLIP and pooled by the resampler into query_num embeddings, which replace
 * the `<unk>` tokens of its placeholder in a Qwen2 decoder's prompt.
 * `grid`: [pieces, cols, rows, h0, w0, h1, w1, ...], the slice grid and each piece's size in patches.
 */
export class MiniCPMVModel extends TowerDecoderModel<MiniCPMVConfig> {
  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asMiniCPMVConfig(modelConfig);
    const quant = towerDecoderQuant(store, opts);
    return {
      vision: buildMiniCPMVVisionGraph(store, config, quant.vision),
      text: buildDecoderGraph(store, config.text, { model: 'llm.model', lmHead: 'llm.lm_head.weight', qkvBias: true }, opts.pageSize ?? 16, quant.text),
    };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<MiniCPMVModel> {
    const config = asMiniCPMVConfig(modelConfig);
    return new MiniCPMVModel(config, await loadTowerDecoder(MiniCPMVModel.graphs(store, config, opts), config, opts));
  }

  /** All pieces of all images in one run, each padded with zero patches to the longest. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const p = this.config.vision.patchSize;
    const side = Math.floor(this.config.vision.imageSize / p);
    const E = this.config.text.hiddenSize;
    const Q = this.config.queryNum;
    const pieces: Array<{ h: number; w: number; data: Float32Array }> = [];
    for (const img of images) {
      const n = img.grid[0]!;
      let off = 0;
      for (let k = 0; k < n; k++) {
        const h = img.grid[3 + 2 * k]!;
        const w = img.grid[4 + 2 * k]!;
        const len = 3 * p * h * w * p;
        pieces.push({ h, w, data: img.pixelValues.subarray(off, off + len) });
        off += len;
      }
    }
    const B = pieces.length;
    const L = Math.max(...pieces.map((x) => x.h * x.w));
    const pixels = new Float32Array(B * 3 * p * L * p);
    const positions = new BigInt64Array(B * L);
    const valid = new Float32Array(B * L);
    const keyPos = new Float32Array(B * L * E);
    pieces.forEach(({ h, w, data }, b) => {
      const n = h * w;
      // Each (channel, row) line of the piece's strip goes to the start of the padded line.
      for (let line = 0; line < 3 * p; line++) pixels.set(data.subarray(line * n * p, (line + 1) * n * p), (b * 3 * p + line) * L * p);
      navitPositionIds(h, w, side).forEach((id, i) => (positions[b * L + i] = BigInt(id)));
      valid.fill(1, b * L, b * L + n);
      keyPos.set(sincos2d(E, h, w), b * L * E);
    });
    const I = MINICPMV_VISION;
    const out = (await this.vision.run({
      [I.pixels]: { data: pixels, dims: [B, 3, p, L * p] },
      [I.positions]: { data: positions, dims: [B, L] },
      [I.valid]: { data: valid, dims: [B, L] },
      [I.keyPos]: { data: keyPos, dims: [B, L, E] },
    }))[I.output]!.data;
    let first = 0;
    return images.map((img) => {
      const n = img.grid[0]!;
      const e = out.slice(first * Q * E, (first + n) * Q * E);
      first += n;
      return e;
    });
  }
}
