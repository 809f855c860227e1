import ort from 'onnxruntime-node';
import { GraphBuilder } from './onnx/graph.js';
import { configureOrtEnvironment } from './ortEnvironment.js';
import { SessionWeights } from './sessionWeights.js';

export interface RuntimeOptions {
  /** Threads for one op (ORT intra-op pool); 0 lets ORT choose. */
  intraOpThreads?: number;
}

export type Feed = Float32Array | BigInt64Array | Int32Array;
export interface FeedTensor {
  data: Feed;
  dims: readonly number[];
}

/**
 * One ONNX Runtime session built from an in-memory graph. The only module that
 * touches onnxruntime-node besides the tensor helpers below.
 */
export class GraphSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(g: GraphBuilder, weights: SessionWeights | null, opts: RuntimeOptions = {}): Promise<GraphSession> {
    configureOrtEnvironment();
    const model = g.encode();
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: opts.intraOpThreads ?? 0,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    };
    // Initializers name their safetensors file relative to the checkpoint folder; a graph
    // loaded from bytes has no folder of its own, so ORT is told where to look.
    if (weights) so.extra = { session: { model_external_initializers_file_folder_path: weights.dataFolder } };
    const session = await ort.InferenceSession.create(model, so);
    return new GraphSession(session);
  }

  async run(feeds: Record<string, FeedTensor>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
    const inputs: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) {
      const type = v.data instanceof BigInt64Array ? 'int64' : v.data instanceof Int32Array ? 'int32' : 'float32';
      inputs[k] = new ort.Tensor(type, v.data, v.dims);
    }
    const out = await this.session.run(inputs);
    const res: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
    for (const [k, t] of Object.entries(out)) res[k] = { data: t.data as Float32Array, dims: t.dims };
    return res;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function i64(values: ArrayLike<number>): BigInt64Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return out;
}
