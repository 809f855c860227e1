import { GraphBuilder } from '../runtime/onnx/graph.js';
import { DataType } from '../runtime/onnx/model.js';
import { WeightStore } from '../runtime/weightStore.js';
import { SessionQuant, SessionWeights } from '../runtime/sessionWeights.js';
import { MlaConfig, MoeConfig, TextConfig } from './config.js';
import { rotaryDim, yarnMscale } from './rope.js';
import { LayerCtx, fusedLinear, gatedMlp, gemmaRmsNorm, linear, pagedAttention, rmsNorm, rotaryPerToken } from './layers.js';

export const TEXT_INPUTS = {
  ids: 'input_ids',
  extraEmbeds: 'extra_embeds',
  embedSelect: 'embed_select',
  cos: 'rope_cos',
  sin: 'rope_sin',
  cosLocal: 'rope_cos_local',
  sinLocal: 'rope_sin_local',
  blockTable: 'block_table',
  mask: 'attn_mask',
  maskWindow: 'attn_mask_window',
  windowBlockTable: 'window_block_table',
  lastIndex: 'last_index',
  kCache: (i: number) => `k_cache_${i}`,
  vCache: (i: number) => `v_cache_${i}`,
  kNew: (i: number) => `k_new_${i}`,
  crossK: (i: number) => `cross_k_${i}`,
  crossV: (i: number) => `cross_v_${i}`,
  crossMask: 'cross_mask',
  crossAttnRows: 'cross_attn_rows',
  crossMlpRows: 'cross_mlp_rows',
  vNew: (i: number) => `v_new_${i}`,
  logits: 'logits',
} as const;

/** Where a decoder's weights are and what it has: Qwen2 has q/k/v biases, Llama and Mistral have none. */
export interface DecoderNames {
  /** Prefix of embed_tokens, layers and norm (e.g. `model`, `model.language_model`, `language_model.model`). */
  model: string;
  /** The output projection, unless the embeddings are tied. */
  lmHead: string;
  qkvBias: boolean;
}

/**
 * A Qwen2 / Llama / Mistral / Gemma 3 decoder as one graph for prefill and decode alike: B sequences of S
 * new tokens each (padded), attending to their past through the engine's KV
 * page pool (gathered by block table) and to themselves. Outputs the logits of
 * each sequence's last new token and the new tokens' rotated K and V, which the
 * engine writes into its pages.
 */
export function buildDecoderGraph(store: WeightStore, cfg: TextConfig, names: DecoderNames, pageSize: number, quant: SessionQuant = null): { g: GraphBuilder; w: SessionWeights } {
  const prefix = names.model;
  const g = new GraphBuilder('text');
  const w = new SessionWeights(store, g, quant);
  const ctx: LayerCtx = { g, w };
  const { hiddenSize: Hd, numHeads: H, numKvHeads: KV, headDim: D } = cfg;
  const I = TEXT_INPUTS;

  const ids = g.input(I.ids, DataType.INT64, ['batch', 'new']);
  const extra = g.input(I.extraEmbeds, DataType.FLOAT, ['extra', Hd]);
  const select = g.input(I.embedSelect, DataType.INT64, ['tokens']);
  const RD = rotaryDim(cfg);
  const cos = g.input(I.cos, DataType.FLOAT, ['tokens', RD / 2]);
  const sin = g.input(I.sin, DataType.FLOAT, ['tokens', RD / 2]);
  const blockTable = g.input(I.blockTable, DataType.INT64, ['batch', 'pages']);
  const mask = g.input(I.mask, DataType.FLOAT, ['batch', 1, 1, 'new', 'keys']);
  const lastIndex = g.input(I.lastIndex, DataType.INT64, ['batch']);
  const windowed = cfg.layerWindows?.some((w) => w !== null) ?? false;
  // Window layers read their K/V from each sequence's ring of pages: their own table and mask.
  const maskWindow = windowed ? g.input(I.maskWindow, DataType.FLOAT, ['batch', 1, 1, 'new', 'window_keys']) : mask;
  const windowTable = windowed ? g.input(I.windowBlockTable, DataType.INT64, ['batch', 'window_pages']) : blockTable;
  const local = cfg.localRopeTheta !== undefined;
  const cosLocal = local ? g.input(I.cosLocal, DataType.FLOAT, ['tokens', RD / 2]) : cos;
  const sinLocal = local ? g.input(I.sinLocal, DataType.FLOAT, ['tokens', RD / 2]) : sin;
  const gemma = cfg.gemmaNorms ?? false;
  const norm = (x: string, name: string, dim: number) => (gemma ? gemmaRmsNorm : rmsNorm)(ctx, x, name, dim, cfg.rmsNormEps);
  // q/k RMSNorm over each head's features: [B, S, heads * D] -> per head -> back.
  const headNorm = (x: string, name: string, heads: number) => g.reshape(norm(g.reshape(x, [0, 0, heads, D]), name, D), [0, 0, heads * D]);
  const act = cfg.hiddenAct ?? 'silu';

  // Token embeddings (Gemma: times sqrt(hidden) in float32), with image embeddings substituted at their positions.
  const embedName = `${prefix}.embed_tokens.weight`;
  let tokenEmb = g.reshape(w.embedding(embedName, [cfg.embedRows ?? cfg.vocabSize, Hd], ids), [-1, Hd]);
  if (gemma) tokenEmb = g.mul(tokenEmb, g.scalarFloat(Math.fround(Math.sqrt(Hd))));
  const merged = g.gather(g.concat([tokenEmb, extra], 0), select, 0);
  let x = g.reshapeDyn(merged, g.concat([g.shape(ids), g.constInt64([Hd])], 0));
  // Token b*S+s reads row b*S+s of the cos/sin tables.
  const tokenIndex = g.reshapeDyn(g.op('Range', [g.constInt64([0], []), g.op('Size', [ids]), g.constInt64([1], [])]), g.shape(ids));

  const crossLayers = new Set(cfg.crossAttentionLayers ?? []);
  const cross = crossLayers.size
    ? {
        mask: g.input(I.crossMask, DataType.FLOAT, ['batch', 1, 1, 'new', 'cross']),
        attnRows: g.input(I.crossAttnRows, DataType.FLOAT, ['batch', 'new', 1]),
        mlpRows: g.input(I.crossMlpRows, DataType.FLOAT, ['batch', 'new', 1]),
      }
    : null;

  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `${prefix}.layers.${i}`;
    if (cross && crossLayers.has(i)) {
      const k = g.input(I.crossK(i), DataType.FLOAT, ['batch', 'cross', KV * D]);
      const v = g.input(I.crossV(i), DataType.FLOAT, ['batch', 'cross', KV * D]);
      x = g.withScope(`layer${i}`, () => crossAttentionLayer(ctx, x, p, cfg, { k, v, ...cross }));
      continue;
    }
    if (cfg.mla) {
      const mla = cfg.mla;
      const latent = g.input(I.kCache(i), DataType.FLOAT, ['pool_pages', pageSize, mla.kvLoraRank + mla.ropeDim]);
      x = g.withScope(`layer${i}`, () => {
        const h = norm(x, `${p}.input_layernorm.weight`, Hd);
        const x1 = g.add(x, mlaAttention(ctx, h, `${p}.self_attn`, cfg, mla, { tokenIndex, cos, sin, latent, blockTable, mask, latentOut: I.kNew(i) }));
        const h2 = norm(x1, `${p}.post_attention_layernorm.weight`, Hd);
        const moe = cfg.moe && i >= cfg.moe.firstDense && i % cfg.moe.layerFreq === 0 ? cfg.moe : null;
        return g.add(x1, moe ? moeMlp(ctx, h2, `${p}.mlp`, Hd, moe) : gatedMlp(ctx, h2, `${p}.mlp`, Hd, cfg.intermediateSize, act, false));
      });
      continue;
    }
    const sliding = (cfg.layerWindows?.[i] ?? null) !== null;
    const poolPages = sliding ? 'window_pool_pages' : 'pool_pages';
    const kCache = g.input(I.kCache(i), DataType.FLOAT, [poolPages, pageSize, KV * D]);
    const vCache = g.input(I.vCache(i), DataType.FLOAT, [poolPages, pageSize, KV * D]);
    x = g.withScope(`layer${i}`, () => {
      const h = norm(x, `${p}.input_layernorm.weight`, Hd);
      const attnP = `${p}.self_attn`;
      const qkv = fusedLinear(ctx, h, [`${attnP}.q_proj`, `${attnP}.k_proj`, `${attnP}.v_proj`], Hd, [H * D, KV * D, KV * D], names.qkvBias);
      // The new tokens' K (rotated) and V are graph outputs, which the engine writes into its pages.
      let [qkFlat, vFlat] = g.split(qkv, [(H + KV) * D, KV * D], -1, [undefined, I.vNew(i)]) as [string, string];
      if (gemma) {
        const [q0, k0] = g.split(qkFlat, [H * D, KV * D], -1) as [string, string];
        qkFlat = g.concat([headNorm(q0, `${attnP}.q_norm.weight`, H), headNorm(k0, `${attnP}.k_norm.weight`, KV)], -1);
      }
      // q and k rotated together ([B, S, (H + KV) * D]), then parted.
      const qkRot = rotaryPerToken(g, qkFlat, tokenIndex, sliding ? cosLocal : cos, sliding ? sinLocal : sin, H + KV);
      const [qFlat, kFlat] = g.split(qkRot, [H * D, KV * D], -1, [undefined, I.kNew(i)]) as [string, string];
      g.output(kFlat, I.kNew(i), DataType.FLOAT, ['batch', 'new', KV * D]);
      g.output(vFlat, I.vNew(i), DataType.FLOAT, ['batch', 'new', KV * D]);

      const o = pagedAttention(g, { q: qFlat, kNew: kFlat, vNew: vFlat, kCache, vCache, blockTable: sliding ? windowTable : blockTable, mask: sliding ? maskWindow : mask }, H, KV, D, cfg.attnScale);
      let attnOut = linear(ctx, o, `${p}.self_attn.o_proj`, H * D, Hd, false);
      if (gemma) attnOut = norm(attnOut, `${p}.post_attention_layernorm.weight`, Hd);
      const x1 = g.add(x, attnOut);
      if (!gemma) {
        const h2 = norm(x1, `${p}.post_attention_layernorm.weight`, Hd);
        const moe = cfg.moe && i >= cfg.moe.firstDense && i % cfg.moe.layerFreq === 0 ? cfg.moe : null;
        return g.add(x1, moe ? moeMlp(ctx, h2, `${p}.mlp`, Hd, moe) : gatedMlp(ctx, h2, `${p}.mlp`, Hd, cfg.intermediateSize, act, false));
      }
      const h2 = norm(x1, `${p}.pre_feedforward_layernorm.weight`, Hd);
      return g.add(x1, norm(gatedMlp(ctx, h2, `${p}.mlp`, Hd, cfg.intermediateSize, act, false), `${p}.post_feedforward_layernorm.weight`, Hd));
    });
  }

  const last = g.gather(g.reshape(x, [-1, Hd]), lastIndex, 0);
  const normed = norm(last, `${prefix}.norm.weight`, Hd);
  const headName = cfg.tieWordEmbeddings ? embedName : names.lmHead;
  g.output(w.matmul(normed, [headName], [cfg.vocabSize], Hd, 'head'), I.logits, DataType.FLOAT, ['batch', cfg.vocabSize]);
  return { g, w };
}

/**
 * Llama 3.2 Vision's gated cross-attention layer: the tokens' queries (RMSNorm per head, no
 * rotary) attend to the images' K/V (computed once per image by the vision graph) under
 * `mask`; the attention and MLP branches are scaled by tanh of their gates. `attnRows` zeroes
 * both branches of a sequence without images (the reference skips the layer), `mlpRows` the MLP
 * branch of a token that sees no image.
 */
function crossAttentionLayer(
  ctx: LayerCtx,
  x: string,
  p: string,
  cfg: TextConfig,
  c: { k: string; v: string; mask: string; attnRows: string; mlpRows: string },
): string {
  const { g, w } = ctx;
  const { hiddenSize: Hd, numHeads: H, numKvHeads: KV, headDim: D } = cfg;
  const a = `${p}.cross_attn`;
  const h = rmsNorm(ctx, x, `${p}.input_layernorm.weight`, Hd, cfg.rmsNormEps);
  const q = g.reshape(rmsNorm(ctx, g.reshape(linear(ctx, h, `${a}.q_proj`, Hd, H * D, false), [0, 0, H, D]), `${a}.q_norm.weight`, D, cfg.rmsNormEps), [0, 0, H * D]);
  // [B, S, g * KV * D] -> [B, KV, g, S, D]; K/V [B, N, KV * D] -> [B, KV, 1, N, D].
  const grouped = (y: string, groups: number) => g.transpose(g.reshape(y, [0, 0, KV, groups, D]), [0, 2, 3, 1, 4]);
  const scores = g.mul(g.matmul(grouped(q, H / KV), g.transpose(grouped(c.k, 1), [0, 1, 2, 4, 3])), g.scalarFloat(1 / Math.sqrt(D)));
  const attn = g.matmul(g.softmax(g.add(scores, c.mask), -1), grouped(c.v, 1));
  const o = linear(ctx, g.reshape(g.transpose(attn, [0, 3, 1, 2, 4]), [0, 0, H * D]), `${a}.o_proj`, H * D, Hd, false);
  const gate = (name: string) => g.mul(g.op('Tanh', [w.weight(name, [1])]), c.attnRows);
  const x1 = g.add(x, g.mul(o, gate(`${p}.cross_attn_attn_gate`)));
  const m = gatedMlp(ctx, rmsNorm(ctx, x1, `${p}.post_attention_layernorm.weight`, Hd, cfg.rmsNormEps), `${p}.mlp`, Hd, cfg.intermediateSize, 'silu', false);
  return g.add(x1, g.mul(g.mul(m, c.mlpRows), gate(`${p}.cross_attn_mlp_gate`)));
}

/**
 * DeepseekV2's MoE MLP over x [B, S, H]: the gate's scores (softmax or sigmoid over the experts),
 * the top-k experts per token with their scores as weights (renormalised if asked, times the
 * scaling factor), the tokens grouped by expert through the chosen experts, weighed and summed,
 * plus the shared experts.
 */
function moeMlp(ctx: LayerCtx, x: string, prefix: string, H: number, m: MoeConfig): string {
  const { g, w } = ctx;
  const E = m.experts;
  const I = m.intermediateSize;
  const flat = g.reshape(x, [-1, H]);
  const logits = g.linearNoBias(flat, w.weight(`${prefix}.gate.weight`, [E, H]));
  const scores = m.scoring === 'softmax' ? g.softmax(logits, -1) : g.sigmoid(logits);
  const topk = (x: string, k: number) => g.opMulti('TopK', [x, g.constInt64([k])], { axis: -1, largest: 1, sorted: 1 }, { outputs: 2 }) as [string, string];
  let top: string;
  let idx: string;
  if (m.method === 'greedy') [top, idx] = topk(scores, m.topK);
  else {
    // noaux_tc: choose on scores + correction bias, only within the topk_group groups whose two best
    // biased scores sum highest (other experts count 0.0, as the reference masks them); weigh by the unbiased scores.
    const per = E / m.groups;
    const biased = g.add(scores, w.weight(`${prefix}.gate.e_score_correction_bias`, [E]));
    const groupScore = g.op('ReduceSum', [topk(g.reshape(biased, [-1, m.groups, per]), 2)[0], g.constInt64([-1])], { keepdims: 0 });
    const kept = g.op('ReduceMax', [g.op('OneHot', [topk(groupScore, m.topKGroups)[1], g.constInt64([m.groups], []), g.constFloat([0, 1])], { axis: -1 }), g.constInt64([1])], { keepdims: 0 });
    const keptExperts = g.reshape(g.mul(g.reshape(kept, [-1, m.groups, 1]), g.constFloat(new Array(per).fill(1), [1, 1, per])), [-1, E]);
    const choice = g.op('Where', [g.cast(keptExperts, DataType.BOOL), biased, g.scalarFloat(0)]);
    idx = topk(choice, m.topK)[1];
    top = g.op('GatherElements', [scores, idx], { axis: 1 });
  }
  let weights = top;
  if (m.normTopK && m.topK > 1) weights = g.div(top, g.add(g.op('ReduceSum', [top, g.constInt64([-1])], { keepdims: 1 }), g.scalarFloat(1e-20)));
  weights = g.mul(weights, g.scalarFloat(m.scalingFactor));
  // ONNX Runtime's MoE runs each chosen expert once over the tokens routed to it (only active
  // experts are read). It weighs by a softmax of its router input: given log(w) on the chosen
  // experts and -1e30 elsewhere, that is w / sum(w), so the sum is multiplied back after.
  const routerLogits = g.op('ScatterElements', [g.op('Expand', [g.scalarFloat(-1e30), g.shape(logits)]), idx, g.op('Log', [weights])], { axis: 1 });
  const experts = Array.from({ length: E }, (_, e) => `${prefix}.experts.${e}`);
  const quant = w.expertQuant([H, I]);
  // fc1 rows interleave each expert's gate and up rows (gate first), as the SwiGLU kernel reads them.
  const fc1 = w.experts(`${prefix}.experts.fc1`, experts.map((p) => [[`${p}.gate_proj.weight`, [I, H]], [`${p}.up_proj.weight`, [I, H]]]), [E, 2 * I, H], quant);
  const fc2 = w.experts(`${prefix}.experts.fc2`, experts.map((p) => [[`${p}.down_proj.weight`, [H, I]]]), [E, H, I], quant);
  const attrs = { activation_type: 'swiglu', swiglu_fusion: 1, k: m.topK, normalize_routing_weights: 0 };
  const mixed = quant
    ? g.op('QMoE', [flat, routerLogits, fc1.weights, fc1.scales!, '', fc2.weights, fc2.scales!], { ...attrs, expert_weight_bits: quant.bits, block_size: quant.blockSize }, { domain: 'com.microsoft' })
    : g.op('MoE', [flat, routerLogits, fc1.weights, '', fc2.weights], attrs, { domain: 'com.microsoft' });
  const routed = g.mul(mixed, g.op('ReduceSum', [weights, g.constInt64([-1])], { keepdims: 1 }));
  const shared = m.shared > 0 ? gatedMlp(ctx, flat, `${prefix}.shared_experts`, H, I * m.shared, 'silu', false) : null;
  const y = shared ? g.add(routed, shared) : routed;
  return g.reshapeDyn(y, g.shape(x));
}

/**
 * DeepSeek-V2's multi-head latent attention, in the reference's absorbed form. Per token the
 * cache holds the normed latent c (kv_lora_rank) and the rotated rope key (one head shared by
 * all), `latentOut` being the new tokens' [c | k_pe]. Scores = (q_pe . k_pe + (q_nope W_UK) . c)
 * * scale; the output is (P c) W_UV^T per head, then o_proj. Rope pairs are interleaved (the
 * checkpoint's order), applied to q_pe and k_pe only.
 */
function mlaAttention(
  ctx: LayerCtx,
  h: string,
  a: string,
  cfg: TextConfig,
  m: MlaConfig,
  io: { tokenIndex: string; cos: string; sin: string; latent: string; blockTable: string; mask: string; latentOut: string },
): string {
  const { g, w } = ctx;
  const { hiddenSize: Hd, numHeads: H } = cfg;
  const { kvLoraRank: r, ropeDim: dr, nopeDim: dn, vDim: dv } = m;
  const dq = dn + dr;
  const q = m.qLoraRank
    ? linear(ctx, rmsNorm(ctx, linear(ctx, h, `${a}.q_a_proj`, Hd, m.qLoraRank, false), `${a}.q_a_layernorm.weight`, m.qLoraRank, 1e-6), `${a}.q_b_proj`, m.qLoraRank, H * dq, false)
    : linear(ctx, h, `${a}.q_proj`, Hd, H * dq, false);
  const q4 = g.reshape(q, [0, 0, H, dq]);
  const qNope = g.transpose(g.slice(q4, [0], [dn], [3]), [0, 2, 1, 3]);
  const rope = (x: string, heads: number) => g.op('RotaryEmbedding', [x, io.tokenIndex, io.cos, io.sin], { interleaved: 1, num_heads: heads }, { domain: 'com.microsoft' });
  const qPe = g.transpose(g.reshape(rope(g.reshape(g.slice(q4, [dn], [dq], [3]), [0, 0, H * dr]), H), [0, 0, H, dr]), [0, 2, 1, 3]);
  const kva = linear(ctx, h, `${a}.kv_a_proj_with_mqa`, Hd, r + dr, false);
  const c = rmsNorm(ctx, g.slice(kva, [0], [r], [2]), `${a}.kv_a_layernorm.weight`, r, 1e-6);
  const kPe = rope(g.slice(kva, [r], [r + dr], [2]), 1);
  const fresh = g.concat([c, kPe], -1);
  g.output(fresh, io.latentOut, DataType.FLOAT, ['batch', 'new', r + dr]);
  // Past latents gathered by block table, then the new ones: [B, 1, T, r + dr].
  const all = g.reshape(g.concat([g.reshape(g.gather(io.latent, io.blockTable, 0), [0, -1, r + dr]), fresh], 1), [0, 1, -1, r + dr]);
  const cAll = g.slice(all, [0], [r], [3]);
  const peAll = g.slice(all, [r], [r + dr], [3]);
  const W = g.reshape(w.weight(`${a}.kv_b_proj.weight`, [H * (dn + dv), r]), [H, dn + dv, r]);
  const qAbs = g.matmul(qNope, g.slice(W, [0], [dn], [1]));
  const scores = g.add(g.matmul(qPe, g.transpose(peAll, [0, 1, 3, 2])), g.matmul(qAbs, g.transpose(cAll, [0, 1, 3, 2])));
  const rs = cfg.ropeScaling;
  const scale = dq ** -0.5 * (rs?.type === 'yarn' && rs.mscaleAllDim ? yarnMscale(rs.factor, rs.mscaleAllDim) ** 2 : 1);
  const p = g.softmax(g.add(g.mul(scores, g.scalarFloat(scale)), g.op('Squeeze', [io.mask, g.constInt64([2])])), -1);
  const out = g.matmul(g.matmul(p, cAll), g.transpose(g.slice(W, [dn], [dn + dv], [1]), [0, 2, 1]));
  return linear(ctx, g.reshape(g.transpose(out, [0, 2, 1, 3]), [0, 0, H * dv]), `${a}.o_proj`, H * dv, Hd, false);
}
