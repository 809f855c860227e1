import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { ImageInput, ModelLoadOptions } from '../model.js';
import { TowerDecoderGraphs, TowerDecoderModel, TowerDecoderParts, loadTowerDecoder, towerDecoderQuant } from '../towerDecoderModel.js';
import { CLIP_INPUTS, buildClipVisionGraph } from './clipVision.js';
import { downscaledSize, unpadRegion } from './anyresProcessing.js';
import { LlavaConfig, asLlavaConfig } from './config.js';

/** llava-hf checkpoints name the parts `vision_tower.*`, `multi_modal_projector.*`, `language_model.*`; newer transformers nest them under `model.`. */
function weightNames(store: WeightStore) {
  if (store.has('model.language_model.embed_tokens.weight')) {
    return { vision: 'model.vision_tower.vision_model', projector: 'model.multi_modal_projector', text: 'model.language_model', lmHead: 'lm_head.weight', newline: 'model.image_newline' };
  }
  return { vision: 'vision_tower.vision_model', projector: 'multi_modal_projector', text: 'language_model.model', lmHead: 'language_model.lm_head.weight', newline: 'image_newline' };
}

/**
 * LLaVA-1.5 and LLaVA-NeXT: a CLIP tower and projector, and a Llama / Mistral decoder with
 * 1-D RoPE. LLaVA-NeXT images come as a base image and tiles, whose features are packed into
 * one map, unpadded to the image's aspect, with a newline feature after every row.
 */
export class LlavaModel extends TowerDecoderModel<LlavaConfig> {
  private constructor(
    config: LlavaConfig,
    parts: TowerDecoderParts,
    /** LLaVA-NeXT's image_newline feature; null for LLaVA-1.5. */
    private readonly newline: Float32Array | null,
  ) {
    super(config, parts);
  }

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): TowerDecoderGraphs {
    const config = asLlavaConfig(modelConfig);
    const names = weightNames(store);
    const quant = towerDecoderQuant(store, opts);
    const vision = buildClipVisionGraph(
      store, config.vision,
      { layer: config.visionFeatureLayer, dropClassToken: config.dropClassToken },
      { prefix: names.projector, textHidden: config.text.hiddenSize },
      names.vision,
      quant.vision,
    );
    const text = buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: config.qkvBias }, opts.pageSize ?? 16, quant.text);
    return { vision, text };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<LlavaModel> {
    const config = asLlavaConfig(modelConfig);
    const parts = await loadTowerDecoder(LlavaModel.graphs(store, config, opts), config, opts);
    const newline = config.pinpoints ? store.readFloat32(weightNames(store).newline, [config.text.hiddenSize]) : null;
    return new LlavaModel(config, parts, newline);
  }

  /** Every piece (an image, or a base image and tiles) has the crop size: one tower run over all of them. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const feats = await this.encodePieces(images, this.config.vision.imageSize, { input: CLIP_INPUTS.pixels, output: CLIP_INPUTS.output });
    return images.map((img, i) => (this.newline ? this.packAnyres(feats[i]!, img.grid) : feats[i]!.slice()));
  }

  /**
   * LLaVA-NeXT's pack_image_features: the base image's features, then the tiles' features as
   * one (rows * G) x (cols * G) map, cut to the image's aspect, a newline feature after each row.
   * `grid`: [height, width, tile rows, tile cols] from the processor.
   */
  private packAnyres(feats: Float32Array, grid: number[]): Float32Array {
    const [height, width, tr, tc] = grid as [number, number, number, number];
    const D = this.config.text.hiddenSize;
    const G = Math.floor(this.config.vision.imageSize / this.config.vision.patchSize);
    const [r0, uh, c0, uw] = unpadRegion(tr * G, tc * G, height, width);
    // The unpadded map, [uh, uw, D]: tile (r // G, c // G), patch (r % G, c % G).
    let map: Float32Array = new Float32Array(uh * uw * D);
    for (let r = 0; r < uh; r++) {
      for (let c = 0; c < uw; c++) {
        const R = r0 + r;
        const C = c0 + c;
        const row = (1 + Math.floor(R / G) * tc + Math.floor(C / G)) * G * G + (R % G) * G + (C % G);
        map.set(feats.subarray(row * D, (row + 1) * D), (r * uw + c) * D);
      }
    }
    const [h, w] = downscaledSize(uh, uw, G, this.config.maxAnyresPatches);
    if (h !== uh || w !== uw) map = bilinear(map, uh, uw, h, w, D);
    const out = new Float32Array((G * G + h * (w + 1)) * D);
    out.set(feats.subarray(0, G * G * D));
    let o = G * G * D;
    for (let r = 0; r < h; r++) {
      out.set(map.subarray(r * w * D, (r + 1) * w * D), o);
      o += w * D;
      out.set(this.newline!, o);
      o += D;
    }
    return out;
  }

}

/**
 * PyTorch's F.interpolate(mode="bilinear", align_corners=False) of a [h, w, D] map to
 * [oh, ow, D], in float32: source coordinate scale * (dst + 0.5) - 0.5, clamped at 0.
 */
function bilinear(x: Float32Array, h: number, w: number, oh: number, ow: number, D: number): Float32Array {
  const f = Math.fround;
  const axis = (inSize: number, outSize: number) => {
    const scale = f(inSize / outSize);
    return Array.from({ length: outSize }, (_, o) => {
      const src = Math.max(f(f(scale * f(o + 0.5)) - 0.5), 0);
      const i0 = Math.floor(src);
      const i1 = i0 + (i0 < inSize - 1 ? 1 : 0);
      const l1 = f(src - i0);
      return { i0, i1, l0: f(1 - l1), l1 };
    });
  };
  const ys = axis(h, oh);
  const xs = axis(w, ow);
  const out = new Float32Array(oh * ow * D);
  for (let y = 0; y < oh; y++) {
    const { i0: y0, i1: y1, l0: a0, l1: a1 } = ys[y]!;
    for (let xx = 0; xx < ow; xx++) {
      const { i0: x0, i1: x1, l0: b0, l1: b1 } = xs[xx]!;
      const o = (y * ow + xx) * D;
      const p00 = (y0 * w + x0) * D;
      const p01 = (y0 * w + x1) * D;
      const p10 = (y1 * w + x0) * D;
      const p11 = (y1 * w + x1) * D;
      for (let d = 0; d < D; d++) {
        out[o + d] = f(f(a0 * f(f(b0 * x[p00 + d]!) + f(b1 * x[p01 + d]!))) + f(a1 * f(f(b0 * x[p10 + d]!) + f(b1 * x[p11 + d]!))));
      }
    }
  }
  return out;
}
