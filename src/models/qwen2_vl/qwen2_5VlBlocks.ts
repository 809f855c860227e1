import { VisionBlockSpec } from './vision.js';
import { gatedMlp, rmsNorm } from '../layers.js';

/** Qwen2.5-VL vision blocks: RMSNorm, gated MLP with biases, window attention except listed blocks. */
export const qwen2_5_vlVision: VisionBlockSpec = {
  norm: (ctx, x, prefix, dim) => rmsNorm(ctx, x, `${prefix}.weight`, dim, 1e-6),
  mlp: (ctx, x, prefix, cfg) => gatedMlp(ctx, x, prefix, cfg.hiddenSize, cfg.intermediateSize, cfg.activation, true),
  usesWindow: (block, cfg) => !cfg.fullAttBlockIndexes.includes(block),
};
