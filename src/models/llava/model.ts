import { availableParallelism } from 'node:os';
import { KvPagePool } from '../../engine/kvPool.js';
import { quantPolicies, sessionQuant } from '../../runtime/quant/policy.js';
import { GraphSession } from '../../runtime/session.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { DecoderRunner } from '../decoderRunner.js';
import { ForwardSeq, ImageInput, ModelLoadOptions, VisionLanguageModel } from '../model.js';
import { CLIP_INPUTS, buildClipVisionGraph } from './clipVision.js';
import { unpadRegion } from '../../multimodal/processors/llavaNext.js';
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
export class LlavaModel implements VisionLanguageModel {
  readonly positionAxes = 1;

  private constructor(
    readonly config: LlavaConfig,
    readonly pageSize: number,
    private readonly vision: GraphSession,
    private readonly text: DecoderRunner,
    readonly weightBytes: number,
    readonly residentBytes: number,
    /** LLaVA-NeXT's image_newline feature; null for LLaVA-1.5. */
    private readonly newline: Float32Array | null,
  ) {}

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}) {
    const config = asLlavaConfig(modelConfig);
    const names = weightNames(store);
    const policies = quantPolicies(opts.quantization ?? 'none');
    const vision = buildClipVisionGraph(
      store, config.vision,
      { layer: config.visionFeatureLayer, dropClassToken: config.dropClassToken },
      { prefix: names.projector, textHidden: config.text.hiddenSize },
      names.vision,
      sessionQuant(store, 'vision', policies.vision, opts.accuracyLevel),
    );
    const text = buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: false }, opts.pageSize ?? 16, sessionQuant(store, 'text', policies.text, opts.accuracyLevel));
    return { vision, text };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<LlavaModel> {
    const config = asLlavaConfig(modelConfig);
    const pageSize = opts.pageSize ?? 16;
    const { vision: v, text: t } = LlavaModel.graphs(store, config, opts);
    const sessions: GraphSession[] = [];
    for (const [what, part] of [['vision tower', v], ['language model', t]] as const) {
      await part.w.prepare((f) => opts.onProgress?.(`quantizing ${what} (${Math.round(f * 100)}%)`), opts.intraOpThreads || availableParallelism());
      opts.onProgress?.(`building ${what}`);
      sessions.push(await GraphSession.create(part.g, part.w, opts));
    }
    const newline = config.pinpoints ? store.readFloat32(weightNames(store).newline, [config.text.hiddenSize]) : null;
    return new LlavaModel(config, pageSize, sessions[0]!, new DecoderRunner(sessions[1]!, config.text, pageSize), v.w.bytes + t.w.bytes, v.w.residentBytes + t.w.residentBytes, newline);
  }

  /** Every piece (an image, or a base image and tiles) has the crop size: one tower run over all of them. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const S = this.config.vision.imageSize;
    const per = 3 * S * S;
    const pieces = images.map((img) => img.pixelValues.length / per);
    const pixels = new Float32Array(pieces.reduce((a, b) => a + b, 0) * per);
    let off = 0;
    for (const img of images) {
      pixels.set(img.pixelValues, off);
      off += img.pixelValues.length;
    }
    const total = off / per;
    const out = (await this.vision.run({ [CLIP_INPUTS.pixels]: { data: pixels, dims: [total, 3, S, S] } }))[CLIP_INPUTS.output]!.data;
    const rowsPerPiece = out.length / total;
    let first = 0;
    return images.map((img, i) => {
      const feats = out.subarray(first * rowsPerPiece, (first + pieces[i]!) * rowsPerPiece);
      first += pieces[i]!;
      return this.newline ? this.packAnyres(feats, img.grid) : feats.slice();
    });
  }

  /**
   * LLaVA-NeXT's pack_image_features: the base image's features, then the tiles' features as
   * one (rows * G) x (cols * G) map, cut to the image's aspect, a newline feature after each row.
   * `grid`: [height, width, tile rows, tile cols] from the processor.
   */
  private packAnyres(feats: Float32Array, grid: number[]): Float32Array {
    const [height, width, tr, tc] = grid as [number, number, number, number];
    const D = this.config.text.hiddenSize;
    const G = this.config.vision.imageSize / this.config.vision.patchSize;
    const [r0, h, c0, w] = unpadRegion(tr * G, tc * G, height, width);
    const out = new Float32Array((G * G + h * (w + 1)) * D);
    out.set(feats.subarray(0, G * G * D));
    let o = G * G * D;
    for (let r = r0; r < r0 + h; r++) {
      for (let c = c0; c < c0 + w; c++) {
        const tile = 1 + Math.floor(r / G) * tc + Math.floor(c / G);
        const row = tile * G * G + (r % G) * G + (c % G);
        out.set(feats.subarray(row * D, (row + 1) * D), o);
        o += D;
      }
      out.set(this.newline!, o);
      o += D;
    }
    return out;
  }

  /** Plain 1-D positions: token i at position i. */
  promptPositions(ids: ArrayLike<number>): { positions: Int32Array; next: number } {
    return { positions: Int32Array.from({ length: ids.length }, (_, i) => i), next: ids.length };
  }

  forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts: { packed?: boolean } = {}): Promise<Float32Array> {
    return this.text.forward(seqs, extraEmbeds, pool, opts);
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.text.release();
  }
}
