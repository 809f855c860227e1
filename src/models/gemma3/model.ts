import { KvPagePool } from '../../engine/kvPool.js';
import { quantPolicies, sessionQuant } from '../../runtime/quant/policy.js';
import { GraphSession } from '../../runtime/session.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { ModelConfig } from '../config.js';
import { buildDecoderGraph } from '../decoder.js';
import { DecoderRunner } from '../decoderRunner.js';
import { ForwardSeq, ImageInput, ModelLoadOptions, VisionLanguageModel } from '../model.js';
import { sequentialPositions } from '../rope.js';
import { createSessions } from '../sessions.js';
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
export class Gemma3Model implements VisionLanguageModel {
  readonly positionAxes = 1;

  private constructor(
    readonly config: Gemma3Config,
    readonly pageSize: number,
    private readonly vision: GraphSession,
    private readonly text: DecoderRunner,
    readonly weightBytes: number,
    readonly residentBytes: number,
  ) {}

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}) {
    const config = asGemma3Config(modelConfig);
    const names = weightNames(store);
    const policies = quantPolicies(opts.quantization ?? 'none');
    const vision = buildGemma3VisionGraph(store, config, names, sessionQuant(store, 'vision', policies.vision, opts.accuracyLevel));
    const text = buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: false }, opts.pageSize ?? 16, sessionQuant(store, 'text', policies.text, opts.accuracyLevel));
    return { vision, text };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<Gemma3Model> {
    const config = asGemma3Config(modelConfig);
    const pageSize = opts.pageSize ?? 16;
    const { vision: v, text: t } = Gemma3Model.graphs(store, config, opts);
    const sessions = await createSessions([['vision tower', v], ['language model', t]], opts);
    return new Gemma3Model(config, pageSize, sessions[0]!, new DecoderRunner(sessions[1]!, config.text, pageSize), v.w.bytes + t.w.bytes, v.w.residentBytes + t.w.residentBytes);
  }

  /** Every image (and pan-and-scan crop) is one square piece: one tower run over all of them. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const S = this.config.vision.imageSize;
    const per = 3 * S * S;
    const pieces = images.map((img) => img.pixelValues.length / per);
    const total = pieces.reduce((a, b) => a + b, 0);
    const pixels = new Float32Array(total * per);
    let off = 0;
    for (const img of images) {
      pixels.set(img.pixelValues, off);
      off += img.pixelValues.length;
    }
    const out = (await this.vision.run({ [GEMMA3_VISION.pixels]: { data: pixels, dims: [total, 3, S, S] } }))[GEMMA3_VISION.output]!.data;
    const rows = this.config.mmTokensPerImage * this.config.text.hiddenSize;
    let first = 0;
    return pieces.map((n) => {
      const e = out.slice(first * rows, (first + n) * rows);
      first += n;
      return e;
    });
  }

  promptPositions(ids: ArrayLike<number>): { positions: Int32Array; next: number } {
    return sequentialPositions(ids.length);
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

  forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts: { packed?: boolean } = {}): Promise<Float32Array> {
    return this.text.forward(seqs, extraEmbeds, pool, opts);
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.text.release();
  }
}
