import { VisionBlockSpec } from './vision.js';
import { layerNorm, plainMlp } from '../layers.js';

/** Qwen2-VL vision blocks: LayerNorm with bias, fc1 -> quick_gelu -> fc2, full attention everywhere. */
export const qwen2_vlVision: VisionBlockSpec = {
  norm: (ctx, x, prefix, dim) => layerNorm(ctx, x, prefix, dim, 1e-6),
  mlp: (ctx, x, prefix, cfg) => plainMlp(ctx, x, `${prefix}.fc1`, `${prefix}.fc2`, cfg.hiddenSize, cfg.intermediateSize, cfg.hiddenSize, cfg.activation),
  usesWindow: () => false,
};
