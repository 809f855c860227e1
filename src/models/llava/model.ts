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
import { LlavaConfig, asLlavaConfig } from './config.js';

/** llava-hf checkpoints name the parts `vision_tower.*`, `multi_modal_projector.*`, `language_model.*`; newer transformers nest them under `model.`. */
function weightNames(store: WeightStore) {
  if (store.has('model.language_model.embed_tokens.weight')) {
    return { vision: 'model.vision_tower.vision_model', projector: 'model.multi_modal_projector', text: 'model.language_model', lmHead: 'lm_head.weight' };
  }
  return { vision: 'vision_tower.vision_model', projector: 'multi_modal_projector', text: 'language_model.model', lmHead: 'language_model.lm_head.weight' };
}

/** LLaVA-1.5: a CLIP tower and projector, and a Llama decoder with 1-D RoPE. */
export class LlavaModel implements VisionLanguageModel {
  readonly positionAxes = 1;

  private constructor(
    readonly config: LlavaConfig,
    readonly pageSize: number,
    private readonly vision: GraphSession,
    private readonly text: DecoderRunner,
    readonly weightBytes: number,
    readonly residentBytes: number,
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
    return new LlavaModel(config, pageSize, sessions[0]!, new DecoderRunner(sessions[1]!, config.text, pageSize), v.w.bytes + t.w.bytes, v.w.residentBytes + t.w.residentBytes);
  }

  /** All images have the crop size: one tower run, then one block of rows per image. */
  async encodeImages(images: ImageInput[]): Promise<Float32Array[]> {
    const S = this.config.vision.imageSize;
    const per = 3 * S * S;
    const pixels = new Float32Array(images.length * per);
    images.forEach((img, i) => pixels.set(img.pixelValues, i * per));
    const out = (await this.vision.run({ [CLIP_INPUTS.pixels]: { data: pixels, dims: [images.length, 3, S, S] } }))[CLIP_INPUTS.output]!.data;
    const rows = out.length / images.length;
    return images.map((_, i) => out.slice(i * rows, (i + 1) * rows));
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
