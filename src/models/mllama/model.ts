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
export class MllamaModel implements VisionLanguageModel {
  readonly positionAxes = 1;
  readonly keepsImageStates = true;

  private constructor(
    readonly config: MllamaConfig,
    readonly pageSize: number,
    private readonly vision: GraphSession,
    private readonly text: DecoderRunner,
    readonly weightBytes: number,
    readonly residentBytes: number,
  ) {}

  static graphs(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}) {
    const config = asMllamaConfig(modelConfig);
    const names = weightNames(store);
    const policies = quantPolicies(opts.quantization ?? 'none');
    const vision = buildMllamaVisionGraph(store, config, names, sessionQuant(store, 'vision', policies.vision, opts.accuracyLevel));
    const text = buildDecoderGraph(store, config.text, { model: names.text, lmHead: names.lmHead, qkvBias: false }, opts.pageSize ?? 16, sessionQuant(store, 'text', policies.text, opts.accuracyLevel));
    return { vision, text };
  }

  static async load(store: WeightStore, modelConfig: ModelConfig, opts: ModelLoadOptions = {}): Promise<MllamaModel> {
    const config = asMllamaConfig(modelConfig);
    const pageSize = opts.pageSize ?? 16;
    const { vision: v, text: t } = MllamaModel.graphs(store, config, opts);
    const sessions = await createSessions([['vision tower', v], ['language model', t]], opts);
    const runner = new DecoderRunner(sessions[1]!, config.text, pageSize, mllamaCrossFeeds(config));
    return new MllamaModel(config, pageSize, sessions[0]!, runner, v.w.bytes + t.w.bytes, v.w.residentBytes + t.w.residentBytes);
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

  promptPositions(ids: ArrayLike<number>): { positions: Int32Array; next: number } {
    return sequentialPositions(ids.length);
  }

  promptImageVisibility(ids: ArrayLike<number>, images: Array<{ start: number }>): Int32Array {
    return mllamaVisibility(ids, images);
  }

  forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts: { packed?: boolean } = {}): Promise<Float32Array> {
    return this.text.forward(seqs, extraEmbeds, pool, opts);
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.text.release();
  }
}
