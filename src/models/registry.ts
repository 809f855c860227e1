import { ModelLoadError } from '../errors.js';
import { RuntimeOptions } from '../runtime/session.js';
import { WeightStore } from '../runtime/weights.js';
import { ModelConfig } from './config.js';
import { VisionLanguageModel } from './model.js';
import { Qwen2VLModel } from './qwen2vlModel.js';

type Loader = (store: WeightStore, config: ModelConfig, opts: RuntimeOptions & { onProgress?: (what: string) => void }) => Promise<VisionLanguageModel & { weightBytes: number }>;

/** architectures[0] of config.json -> the family that builds it. */
const REGISTRY: Record<string, Loader> = {
  Qwen2_5_VLForConditionalGeneration: (s, c, o) => Qwen2VLModel.load(s, c, o),
  Qwen2VLForConditionalGeneration: (s, c, o) => Qwen2VLModel.load(s, c, o),
};

export async function loadModel(modelDir: string, config: ModelConfig, opts: RuntimeOptions & { onProgress?: (what: string) => void } = {}): Promise<VisionLanguageModel & { weightBytes: number }> {
  const loader = REGISTRY[config.architecture];
  if (!loader) throw new ModelLoadError(`unsupported architecture ${config.architecture}`);
  return loader(WeightStore.open(modelDir), config, opts);
}
