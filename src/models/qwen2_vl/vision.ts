import { GraphBuilder } from '../../runtime/onnx/graph.js';
import { DataType } from '../../runtime/onnx/model.js';
import { WeightStore } from '../../runtime/weightStore.js';
import { SessionQuant, SessionWeights } from '../../runtime/sessionWeights.js';
import { VisionConfig } from './config.js';
import { LayerCtx, applyRotary, linear } from '../layers.js';

/** The parts in which Qwen2-VL and Qwen2.5-VL vision towers differ. */
export interface VisionBlockSpec {
  norm(ctx: LayerCtx, x: string, prefix: string, dim: number): string;
  mlp(ctx: LayerCtx, x: string, prefix: string, cfg: VisionConfig): string;
  usesWindow(block: number, cfg: VisionConfig): boolean;
}

export const VISION_INPUTS = {
  pixels: 'pixel_values',
  cos: 'rot_cos',
  sin: 'rot_sin',
  fullGather: 'full_gather',
  fullUngather: 'full_ungather',
  winGather: 'win_gather',
  winMask: 'win_mask',
  winUngather: 'win_ungather',
  output: 'image_embeds',
} as const;

/**
 * Attention over segments (windows or whole images): rows are gathered into
 * [segments, len] batches and attended with ONNX Runtime's fused multi-head
 * attention, then put back in order. Whole-image segments have equal lengths
 * (images of one size share a run) and no mask, which keeps the kernel on its
 * memory-efficient path; windows are padded and masked.
 */
function segmentAttention(g: GraphBuilder, q: string, k: string, v: string, seg: { gather: string; mask: string | null; ungather: string }, heads: number, headDim: number): string {
  // q/k/v: [N, H, D] -> [S, L, H*D]
  const toBatched = (x: string) => g.reshape(g.gather(x, seg.gather, 0), [0, 0, heads * headDim]);
  const inputs = [toBatched(q), toBatched(k), toBatched(v)];
  if (seg.mask) inputs.push('', seg.mask);
  const out = g.op('MultiHeadAttention', inputs, { num_heads: heads, scale: { float: 1 / Math.sqrt(headDim) } }, { domain: 'com.microsoft' });
  return g.gather(g.reshape(out, [-1, heads * headDim]), seg.ungather, 0);
}

/**
 * Builds the vision tower: patch embedding, blocks with 2D rotary attention over
 * windows or whole images, and the 2x2 patch merger into the text width.
 */
export function buildQwenVisionGraph(store: WeightStore, cfg: VisionConfig, spec: VisionBlockSpec, prefix = 'visual', quant: SessionQuant = null): { g: GraphBuilder; w: SessionWeights } {
  const g = new GraphBuilder('vision');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const C = cfg.hiddenSize;
  const H = cfg.numHeads;
  const D = C / H;
  const patchDim = cfg.inChannels * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const I = VISION_INPUTS;

  const pixels = g.input(I.pixels, DataType.FLOAT, ['patches', patchDim]);
  const cos = g.input(I.cos, DataType.FLOAT, ['patches', 1, D]);
  const sin = g.input(I.sin, DataType.FLOAT, ['patches', 1, D]);
  const full = {
    gather: g.input(I.fullGather, DataType.INT64, ['full_segments', 'full_len']),
    mask: null,
    ungather: g.input(I.fullUngather, DataType.INT64, ['patches']),
  };
  const hasWindows = Array.from({ length: cfg.depth }, (_, i) => spec.usesWindow(i, cfg)).some(Boolean);
  const win = hasWindows
    ? {
        gather: g.input(I.winGather, DataType.INT64, ['windows', 'window_len']),
        mask: g.input(I.winMask, DataType.INT32, ['windows', 'window_len']),
        ungather: g.input(I.winUngather, DataType.INT64, ['patches']),
      }
    : null;

  // Conv3d with kernel == stride is a matmul with the kernel flattened (c, t, y, x).
  const patchW = g.reshape(w.weight(`${prefix}.patch_embed.proj.weight`, [C, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, cfg.patchSize]), [C, patchDim]);
  let x = g.linearNoBias(pixels, patchW);

  for (let i = 0; i < cfg.depth; i++) {
    const p = `${prefix}.blocks.${i}`;
    x = g.withScope(`vblock${i}`, () => {
      const h = spec.norm(ctx, x, `${p}.norm1`, C);
      const qkv = g.reshape(linear(ctx, h, `${p}.attn.qkv`, C, 3 * C, true), [-1, 3, H, D]);
      const pick = (j: number) => g.reshape(g.slice(qkv, [j], [j + 1], [1]), [-1, H, D]);
      const q = applyRotary(g, pick(0), cos, sin, D);
      const k = applyRotary(g, pick(1), cos, sin, D);
      const seg = spec.usesWindow(i, cfg) ? win! : full;
      const attn = segmentAttention(g, q, k, pick(2), seg, H, D);
      const x1 = g.add(x, linear(ctx, attn, `${p}.attn.proj`, C, C, true));
      return g.add(x1, spec.mlp(ctx, spec.norm(ctx, x1, `${p}.norm2`, C), `${p}.mlp`, cfg));
    });
  }

  // Merger: norm each patch, concatenate each 2x2 block, two-layer GELU MLP.
  const unit = cfg.spatialMergeSize * cfg.spatialMergeSize;
  const merged = g.reshape(spec.norm(ctx, x, `${prefix}.merger.ln_q`, C), [-1, C * unit]);
  const m1 = g.gelu(linear(ctx, merged, `${prefix}.merger.mlp.0`, C * unit, C * unit, true));
  const out = linear(ctx, m1, `${prefix}.merger.mlp.2`, C * unit, cfg.outHiddenSize, true);
  g.output(out, I.output, DataType.FLOAT, ['units', cfg.outHiddenSize]);
  return { g, w };
}
