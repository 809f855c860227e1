"""Numerical checks of the reference semantics a port must copy (results in semantics.json; summarised in
test/fixtures/golden-extra/DEEPSEEK_VL2.md). Uses the MLA + noaux_tc checkpoint (deepseek_vl2_small) and the public
tiny checkpoint.
  1. MLA: modeling_deepseek.DeepseekV2Attention (eager, "absorbed" form: q_nope x W_UK, scores against the cached
     latent, output through W_UV) equals the textbook MLA in float64 (k = [W_UK c ; k_pe], v = W_UV c); the
     cache holds k_pe (after rope) [b, 1, L, rope] and the normalised latent [b, 1, L, kv_lora_rank] per layer;
     rope on q_pe / k_pe uses the de-interleaving permutation before rotate_half (pairs (2i, 2i+1)), and leaving it
     out changes the output; yarn: cos/sin carry mscale(f, mscale) / mscale(f, mscale_all_dim) and the softmax scale
     carries mscale(f, mscale_all_dim)^2.
  2. noaux_tc router (MoEGate): sigmoid scores; choice on scores + e_score_correction_bias; group score = sum of the
     top-2 biased scores per group; topk_group groups kept; the others masked with 0.0 (not -inf); weights =
     unbiased scores of the chosen experts, divided by their sum (+1e-20), times routed_scaling_factor.
     Checked against a float64 re-implementation on every token of a case; the number of tokens whose choice the
     bias changes; a synthetic input where a masked expert (0.0) beats negative biased scores.
  3. greedy softmax router of the tiny layout: softmax over all experts, top-k, no renormalisation (norm_topk_prob
     false), times routed_scaling_factor 1.0: the weights sum to less than 1.
  4. MHA layers of the tiny layout (transformers 4.38 LlamaAttention): rope with rotate_half over the whole
     head_dim, no permutation.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dslib  # noqa: E402
from transformers.cache_utils import DynamicCache  # noqa: E402

torch.manual_seed(0)
R = {}
small_dir = os.path.join(dslib.EXTRA, "deepseek_vl2_small", "model")
model = dslib.load_model(small_dir)
lc = model.config.language_config
att = model.language.model.layers[1].self_attn
H, nope, rope, vdim, rank = lc.num_attention_heads, lc.qk_nope_head_dim, lc.qk_rope_head_dim, lc.v_head_dim, lc.kv_lora_rank
L = 9
x = torch.randn(1, L, lc.hidden_size)
pos = torch.arange(L)[None]
mask = torch.full((L, L), torch.finfo(torch.float32).min).triu(1)[None, None]
cache = DynamicCache()
with torch.no_grad():
    out_ref, _, cache = att(x, attention_mask=mask, position_ids=pos, past_key_value=cache, use_cache=True)


def rms(t, w, eps):
    return w.double() * (t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps))


def deinterleave(t):  # view(.., d/2, 2).transpose(-1, -2).reshape: (x0, x2, x4, ..., x1, x3, ...)
    return torch.cat([t[..., 0::2], t[..., 1::2]], -1)


def rot_half(t):
    return torch.cat([-t[..., t.shape[-1] // 2:], t[..., :t.shape[-1] // 2]], -1)


def yarn(cfg, dim, theta):
    rs = cfg.rope_scaling
    f, omax = rs["factor"], rs["original_max_position_embeddings"]
    i = torch.arange(0, dim, 2, dtype=torch.float64)
    extra = 1.0 / theta ** (i / dim)
    inter = 1.0 / (f * theta ** (i / dim))
    corr = lambda r: dim * math.log(omax / (r * 2 * math.pi)) / (2 * math.log(theta))  # noqa: E731
    lo, hi = max(math.floor(corr(rs["beta_fast"])), 0), min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(0, 1)
    keep = 1.0 - ramp
    inv = inter * (1 - keep) + extra * keep
    ms = lambda s, m: 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0  # noqa: E731
    return inv, ms(f, rs["mscale"]) / ms(f, rs["mscale_all_dim"]), ms(f, rs["mscale_all_dim"]), (lo, hi)


inv, cs_scale, ms_all, (lo, hi) = yarn(lc, rope, lc.rope_theta)
with torch.no_grad():
    xd = x.double()
    W = lambda m: m.weight.double()  # noqa: E731
    q = xd @ W(att.q_a_proj).T
    q = rms(q, att.q_a_layernorm.weight, att.q_a_layernorm.variance_epsilon) @ W(att.q_b_proj).T
    q = q.view(1, L, H, nope + rope).transpose(1, 2)
    q_nope, q_pe = q[..., :nope], q[..., nope:]
    ckv = xd @ W(att.kv_a_proj_with_mqa).T
    c, k_pe = ckv[..., :rank], ckv[..., rank:]
    c = rms(c, att.kv_a_layernorm.weight, att.kv_a_layernorm.variance_epsilon)
    kv = (c @ W(att.kv_b_proj).T).view(1, L, H, nope + vdim).transpose(1, 2)
    k_nope, v = kv[..., :nope], kv[..., nope:]
    ang = torch.arange(L, dtype=torch.float64)[:, None] * inv[None]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos() * cs_scale, emb.sin() * cs_scale

    def apply(t, permute=True):
        t = deinterleave(t) if permute else t
        return t * cos + rot_half(t) * sin
    k_pe4 = k_pe[:, None]
    scale = (nope + rope) ** -0.5 * ms_all * ms_all

    def attend(permute):
        qp, kp = apply(q_pe, permute), apply(k_pe4, permute)
        k = torch.cat([k_nope, kp.expand(1, H, L, rope)], -1)
        qq = torch.cat([q_nope, qp], -1)
        s = qq @ k.transpose(-1, -2) * scale + mask.double()
        o = torch.softmax(s, -1) @ v
        return o.transpose(1, 2).reshape(1, L, H * vdim) @ W(att.o_proj).T, kp
    naive, kp = attend(True)
    naive_noperm, _ = attend(False)
R["mla"] = {
    "softmax_scale_reference": att.softmax_scale, "softmax_scale_formula": scale,
    "yarn_cos_sin_factor": cs_scale, "yarn_mscale_all_dim_factor": ms_all, "yarn_ramp_low_high": [lo, hi],
    "yarn_inv_freq": inv.tolist(), "reference_inv_freq": att.rotary_emb.inv_freq.tolist(),
    "max_abs_diff_reference_vs_float64_textbook_mla": float((out_ref.double() - naive).abs().max()),
    "max_abs_output": float(naive.abs().max()),
    "max_abs_diff_if_rope_permutation_left_out": float((naive_noperm - naive).abs().max()),
    "cache_key_shape": list(cache.key_cache[1].shape), "cache_value_shape": list(cache.value_cache[1].shape),
    "cache_key_is_rotated_k_pe_max_abs_diff": float((cache.key_cache[1].double() - kp).abs().max()),
    "cache_value_is_normalised_latent_max_abs_diff": float((cache.value_cache[1].double()[:, 0] - c).abs().max()),
    "q_a_layernorm_eps": att.q_a_layernorm.variance_epsilon, "kv_a_layernorm_eps": att.kv_a_layernorm.variance_epsilon,
    "config_rms_norm_eps": lc.rms_norm_eps,
}

# ---- noaux_tc router on the hidden states of a real case
proc = dslib.load_processor(small_dir)
cc = json.load(open(os.path.join(dslib.EXTRA, "deepseek_vl2_small", "chat_cases.json")))
msgs = cc["cases"][0]["messages"]
_, _, prep = dslib.process(proc, msgs)
gate = model.language.model.layers[1].mlp.gate
got = {}
h = gate.register_forward_hook(lambda m, a, o: got.update(x=a[0].detach().clone(), idx=o[0].clone(), w=o[1].clone()))
with torch.no_grad():
    model(input_ids=prep.input_ids, attention_mask=prep.attention_mask.long(), images=prep.images,
          images_seq_mask=prep.images_seq_mask, images_spatial_crop=prep.images_spatial_crop, use_cache=False)
h.remove()


def noaux(xh, weight, bias, k, n_group, topk_group, scale, mask_value=0.0):
    s = torch.sigmoid(xh.double() @ weight.double().T)
    sc = s + bias.double()
    n, e = sc.shape
    g = sc.view(n, n_group, -1).topk(2, -1).values.sum(-1)
    keep = torch.zeros_like(g).scatter_(1, g.topk(topk_group, -1).indices, 1)
    m = keep[:, :, None].expand(n, n_group, e // n_group).reshape(n, e).bool()
    idx = sc.masked_fill(~m, mask_value).topk(k, -1).indices
    w = s.gather(1, idx)
    w = w / (w.sum(-1, keepdim=True) + 1e-20) * scale
    return idx, w, s


xh = got["x"].view(-1, lc.hidden_size)
idx, w, s = noaux(xh, gate.weight, gate.e_score_correction_bias, lc.num_experts_per_tok, lc.n_group, lc.topk_group,
                  lc.routed_scaling_factor)
ref_idx, ref_w = got["idx"], got["w"]
o1, o2 = idx.sort(-1), ref_idx.sort(-1)
same_sets = torch.equal(o1.values, o2.values)
wdiff = float((w.gather(1, o1.indices) - ref_w.double().gather(1, o2.indices)).abs().max())
idx_plain = torch.sigmoid(xh.double() @ gate.weight.double().T).topk(lc.num_experts_per_tok, -1).indices.sort(-1).values
changed = int((idx_plain != o1.values).any(-1).sum())
idx_nobias = noaux(xh, gate.weight, torch.zeros_like(gate.e_score_correction_bias), lc.num_experts_per_tok, lc.n_group,
                   lc.topk_group, lc.routed_scaling_factor)[0].sort(-1).values
changed_bias = int((idx_nobias != o1.values).any(-1).sum())
# synthetic: a negative biased score loses to a masked expert's 0.0
with torch.no_grad():
    g2 = dslib.MD.MoEGate(lc)
    g2.weight.zero_()
    g2.e_score_correction_bias.copy_(torch.tensor([-0.9, -0.9, -0.8, -0.8, 0.3, 0.3, -0.95, -0.95]))
    g2.eval()
    i2, w2, _ = g2(torch.zeros(1, 1, lc.hidden_size))  # every sigmoid score 0.5
R["noaux_tc"] = {
    "case": cc["cases"][0]["name"], "tokens": int(xh.shape[0]),
    "expert_sets_equal_float64_reimplementation": same_sets, "max_abs_diff_weights": wdiff,
    "weights_sum_min_max": [float(ref_w.sum(-1).min()), float(ref_w.sum(-1).max())],
    "routed_scaling_factor": lc.routed_scaling_factor,
    "tokens_whose_choice_differs_from_plain_topk_of_sigmoid": changed,
    "tokens_whose_choice_the_correction_bias_changes (group-limited both ways)": changed_bias,
    "synthetic_masked_expert_chosen": {
        "biased_scores": (0.5 + g2.e_score_correction_bias).tolist(),
        "groups_kept (top-2 group sums)": "group 2 (experts 4,5) and group 1 (experts 2,3)",
        "reference_choice": sorted(i2[0].tolist()),
        "note": "experts 2 and 3 (kept group, biased score -0.3) lose to a masked expert scored 0.0: the reference picks "
                "from outside the kept groups once the kept groups run out of positive biased scores; which masked expert "
                "wins the 0.0 tie is up to torch.topk; the weights use the unbiased scores (0.5 each)",
        "reference_weights": w2[0].tolist(),
    },
}

# ---- greedy softmax router and MHA rope of the public tiny checkpoint
pub = dslib.load_model(os.path.join(dslib.PUBLIC, "model"))
g = pub.language.model.layers[1].mlp.gate
xt = torch.randn(5, 1, pub.config.language_config.hidden_size)
with torch.no_grad():
    ti, tw, _ = g(xt)
    sm = torch.softmax(xt.view(5, -1) @ g.weight.T, -1)
R["greedy_softmax"] = {
    "norm_topk_prob": g.norm_topk_prob, "routed_scaling_factor": g.routed_scaling_factor,
    "weights_equal_softmax_over_all_experts": bool(torch.allclose(tw, sm.gather(1, ti), atol=1e-7)),
    "weight_sums": tw.sum(-1).tolist(),
}
a = pub.language.model.layers[0].self_attn
R["mha"] = {"class": type(a).__module__ + "." + type(a).__name__, "head_dim": a.head_dim,
            "inv_freq": a.rotary_emb.inv_freq.tolist(), "rope_theta": a.rope_theta}
ok = (R["mla"]["max_abs_diff_reference_vs_float64_textbook_mla"] < 1e-4 and R["mla"]["max_abs_diff_if_rope_permutation_left_out"] > 1e-2
      and R["mla"]["cache_key_is_rotated_k_pe_max_abs_diff"] < 1e-5 and R["mla"]["cache_value_is_normalised_latent_max_abs_diff"] < 1e-5
      and same_sets and wdiff < 1e-5 and R["greedy_softmax"]["weights_equal_softmax_over_all_experts"])
R["ALL_PASS"] = ok
json.dump(R, open(os.path.join(dslib.HERE, "semantics.json"), "w"), indent=1)
print(json.dumps(R, indent=1))
sys.exit(0 if ok else 1)
