import { KvPagePool } from '../engine/kvPool.js';
import { quantPolicies, sessionQuant } from '../runtime/quant/policy.js';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { GraphSession } from '../runtime/session.js';
import { SessionQuant, SessionWeights } from '../runtime/sessionWeights.js';
import { WeightStore } from '../runtime/weightStore.js';
import { ModelConfig, TextConfig } from './config.js';
import { CrossRows, DecoderRunner } from './decoderRunner.js';
import { ForwardSeq, ImageInput, ModelLoadOptions, VisionLanguageModel } from './model.js';
import { sequentialPositions } from './rope.js';
import { createSessions } from './sessions.js';

/** A graph and the checkpoint weights it uses. */
export interface WeightedGraph {
  g: GraphBuilder;
  w: SessionWeights;
}

/** A family's two graphs, built without reading weights (also used to size a quantization mode). */
export interface TowerDecoderGraphs {
  vision: WeightedGraph;
  text: WeightedGraph;
}

/** The loaded sessions of a tower and a decoder, and what they hold. */
export interface TowerDecoderParts {
  pageSize: number;
  vision: GraphSession;
  text: DecoderRunner;
  weightBytes: number;
  residentBytes: number;
}

/**
 * How each of the two sessions holds its weights under the load options. `text`: the decoder's
 * config, whose mixture-of-experts weights are rearranged into the weights file.
 */
export function towerDecoderQuant(store: WeightStore, opts: ModelLoadOptions, text?: TextConfig): { vision: SessionQuant; text: SessionQuant } {
  const policies = quantPolicies(opts.quantization ?? 'none');
  return {
    vision: sessionQuant(store, 'vision', policies.vision, opts.accuracyLevel),
    text: sessionQuant(store, 'text', policies.text, opts.accuracyLevel, undefined, !!text?.moe),
  };
}

/** Creates the tower's and the decoder's sessions (one after the other) and the decoder's runner. */
export async function loadTowerDecoder(
  graphs: TowerDecoderGraphs,
  config: ModelConfig,
  opts: ModelLoadOptions,
  crossFeeds?: (seqs: ForwardSeq[], rows: CrossRows) => Parameters<GraphSession['run']>[0],
): Promise<TowerDecoderParts> {
  const pageSize = opts.pageSize ?? 16;
  const { vision: v, text: t } = graphs;
  const [vision, text] = await createSessions([['vision tower', v], ['language model', t]], opts);
  return {
    pageSize,
    vision: vision!,
    text: new DecoderRunner(text!, config.text, pageSize, crossFeeds),
    weightBytes: v.w.bytes + t.w.bytes,
    residentBytes: v.w.residentBytes + t.w.residentBytes,
  };
}

/**
 * A vision tower and a decoder run by the shared model runner: what every family has in
 * common. A family adds how it encodes images and, where they differ, its positions.
 */
export abstract class TowerDecoderModel<C extends ModelConfig> implements VisionLanguageModel {
  readonly positionAxes: number = 1;
  readonly pageSize: number;
  readonly weightBytes: number;
  readonly residentBytes: number;
  protected readonly vision: GraphSession;
  protected readonly text: DecoderRunner;

  protected constructor(
    readonly config: C,
    parts: TowerDecoderParts,
  ) {
    this.pageSize = parts.pageSize;
    this.vision = parts.vision;
    this.text = parts.text;
    this.weightBytes = parts.weightBytes;
    this.residentBytes = parts.residentBytes;
  }

  abstract encodeImages(images: ImageInput[]): Promise<Float32Array[]>;

  /**
   * Runs the tower once over all images' square pieces ([pieces, 3, S, S] from input `input`):
   * `pieces[i]` pieces of image i (default: all of its pixel values). Returns each image's
   * share of output `output`, as views of it.
   */
  protected async encodePieces(images: ImageInput[], S: number, names: { input: string; output: string }, pieces = images.map((img) => img.pixelValues.length / (3 * S * S))): Promise<Float32Array[]> {
    const per = 3 * S * S;
    const total = pieces.reduce((a, b) => a + b, 0);
    const pixels = new Float32Array(total * per);
    let first = 0;
    images.forEach((img, i) => {
      pixels.set(img.pixelValues.subarray(0, pieces[i]! * per), first * per);
      first += pieces[i]!;
    });
    const out = (await this.vision.run({ [names.input]: { data: pixels, dims: [total, 3, S, S] } }))[names.output]!.data;
    const rows = out.length / total;
    first = 0;
    return pieces.map((n) => {
      const view = out.subarray(first * rows, (first + n) * rows);
      first += n;
      return view;
    });
  }

  /** Plain 1-D positions: token i at position i. */
  promptPositions(ids: ArrayLike<number>, _images: Array<{ start: number; grid: number[] }>): { positions: Int32Array; next: number } {
    return sequentialPositions(ids.length);
  }

  forward(seqs: ForwardSeq[], extraEmbeds: Float32Array, pool: KvPagePool, opts: { packed?: boolean } = {}): Promise<Float32Array> {
    return this.text.forward(seqs, extraEmbeds, pool, opts);
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.text.release();
  }
}
