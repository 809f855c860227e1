import { GraphSession, i64 } from '../../runtime/session.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { Qwen2VLConfig, asQwen2VLConfig } from './config.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { promptPositions } from './mrope.js';
import { qwen2_5_vlVision } from './qwen2_5VlBlocks.js';
import { qwen2_vlVision } from './qwen2VlBlocks.js';
import { buildDecoderGraph } from '../decoder.js';
import { VISION_INPUTS, buildQwenVisionGraph } from './vision.js';
import { GridThw, buildVisionLayout } from './visionLayout.js';

/** Released checkpoints use `model.*` / `visual.*`; newer transformers save `model.language_model.*` / `model.visual.*`. */
function weightPrefixes(store: WeightStore): { text: string; vision: string } {
  if (store.has('model.language_model.embed_tokens.weight')) return { text: 'model.language_model', vision: 'model.visual' };
  return { text: 'model', vision: 'visual' };
}

/** Qwen2-VL and Qwen2.5-VL: a vision tower and a Qwen2 decoder with M-RoPE. */
export class Qwen2VLModel extends TowerDecoderModel<Qwen2VLConfig> {
  override readonly positionAxes = 3;

  /** The vision and text graphs, weights not read yet (also used to size a quantization mode). */
  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asQwen2VLConfig(modelConfig);
    const quant = towerDecoderQuant(store, opts);
    const prefixes = weightPrefixes(store);
    const spec = config.vision.kind === 'qwen2_5_vl' ? qwen2_5_vlVision : qwen2_vlVision;
    const v = buildQwenVisionGraph(store, config.vision, spec, prefixes.vision, quant.vision);
    const t = buildDecoderGraph(store, config.text, { model: prefixes.text, lmHead: 'lm_head.weight', qkvBias: true }, opts.pageSize ?? 16, quant.text);
    return { vision: v, text: t };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<Qwen2VLModel> {
    const config = asQwen2VLConfig(modelConfig);
    return new Qwen2VLModel(config, await loadTowerDecoder(Qwen2VLModel.graphs(store, config, opts), config, opts));
  }

  /** Images of the same size are encoded together, one vision run per size. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const out: Float32Array[] = new Array(images.length);
    const groups = new Map<string, number[]>();
    images.forEach((img, i) => {
      const key = img.grid.join('x');
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    for (const idx of groups.values()) {
      const embeds = await this.encodeSameSize(idx.map((i) => images[i]!));
      idx.forEach((i, j) => (out[i] = embeds[j]!));
    }
    return out;
  }

  private async encodeSameSize(images: ImageInput[]): Promise<Float32Array[]> {
    const vc = this.config.vision;
    const layout = buildVisionLayout(images.map((i) => i.grid as GridThw), vc);
    const patchDim = vc.inChannels * vc.temporalPatchSize * vc.patchSize * vc.patchSize;
    // Concatenate the images' patches and put them in the graph's (window) order.
    const all = new Float32Array(layout.numPatches * patchDim);
    let off = 0;
    for (const img of images) {
      all.set(img.pixelValues, off);
      off += img.pixelValues.length;
    }
    const pixels = new Float32Array(all.length);
    for (let k = 0; k < layout.numPatches; k++) {
      const src = layout.patchOrder[k]! * patchDim;
      pixels.set(all.subarray(src, src + patchDim), k * patchDim);
    }
    const D = vc.hiddenSize / vc.numHeads;
    const I = VISION_INPUTS;
    const feeds: Parameters<GraphSession['run']>[0] = {
      [I.pixels]: { data: pixels, dims: [layout.numPatches, patchDim] },
      [I.cos]: { data: layout.cos, dims: [layout.numPatches, 1, D] },
      [I.sin]: { data: layout.sin, dims: [layout.numPatches, 1, D] },
      [I.fullGather]: { data: layout.full.gather, dims: [layout.full.numSegments, layout.full.maxLen] },
      [I.fullUngather]: { data: layout.full.ungather, dims: [layout.numPatches] },
    };
    if (layout.window && vc.kind === 'qwen2_5_vl' && vc.fullAttBlockIndexes.length < vc.depth) {
      const wseg = layout.window;
      feeds[I.winGather] = { data: wseg.gather, dims: [wseg.numSegments, wseg.maxLen] };
      feeds[I.winMask] = { data: wseg.mask, dims: [wseg.numSegments, wseg.maxLen] };
      feeds[I.winUngather] = { data: wseg.ungather, dims: [layout.numPatches] };
    }
    const out = (await this.vision.run(feeds))[I.output]!.data;
    // Back to the images' own order, then split per image.
    const Hd = vc.outHiddenSize;
    const unit = vc.spatialMergeSize * vc.spatialMergeSize;
    const result: Float32Array[] = [];
    let u = 0;
    for (const img of images) {
      const n = (img.grid[0] * img.grid[1] * img.grid[2]) / unit;
      const emb = new Float32Array(n * Hd);
      for (let j = 0; j < n; j++) {
        const r = layout.restore[u + j]!;
        emb.set(out.subarray(r * Hd, (r + 1) * Hd), j * Hd);
      }
      result.push(emb);
      u += n;
    }
    return result;
  }

  override promptPositions(ids: ArrayLike<number>, images: Array<{ start: number; grid: number[] }>): { positions: Int32Array; next: number } {
    return promptPositions(ids, images.map((i) => ({ start: i.start, grid: i.grid as GridThw })), this.config.vision.spatialMergeSize);
  }

}

export { i64 };
