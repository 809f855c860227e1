"""Numerical checks of the reference semantics a port must copy (MINICPMV.md cites them). Writes probes.json.

  position_buckets   the NaViT position ids of modeling_navit_siglip.SiglipVisionEmbeddings.forward against
                     floor(i * side / n) and an emulation of torch's float32 arange (scalar, AVX2 and AVX-512
                     lane widths), for every patch count 1..1100 and the position grids 10 (public), 7 (BF16
                     checkpoint) and 70 (released, 980 / 14)
  sincos             resampler.get_2d_sincos_pos_embed: which half of the channels holds the column (x) and which
                     the row (y); numpy float32 vs float64-then-rounded
  rounding           ensure_divide uses Python's round (half to even)
  channel_guess      a first image 1 or 3 px high makes the reference raise; later images are fine
  slice_mode_off     slice_mode false: the image is not resized, unfold drops the pixels past a multiple of 14
  padding            slices of different sizes batched with padding give the same vision features / resampler
                     output as each slice alone
  independent_image_path  the vision tower and the resampler re-computed from the weights as MINICPMV.md
                     describes them, slice by slice, against the model's batched outputs
  literal_tags       user text containing "<image>" / "<slice>" is tokenized as the special token and shifts
                     image_bound
  generation         eos / pad ids the reference uses
"""
import io
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

R = common.remote()
out = {"versions": common.versions()}


# ---------------------------------------------------------------- position buckets
def torch_buckets(n, side):
    """Exactly the reference's lines (SiglipVisionEmbeddings.forward), for one axis of n patches."""
    boundaries = torch.arange(1 / side, 1.0, 1 / side)
    nb = torch.tensor(n, dtype=torch.int32)  # tgt_sizes are int32 there
    frac = torch.arange(0, 1 - 1e-6, 1 / nb)
    return torch.bucketize(frac, boundaries, right=True).tolist(), boundaries


def f32(x):
    return float(np.float32(x))


def arange_f32(start, end, step, vec):
    """torch 1.13's CPU arange for float32 (RangeFactories.cpp + RangeFactoriesKernel.cpp, cpu/Loops.h): n =
    ceil((end - start) / step) in double; blocks of 2 * vec elements (vec = Vectorized<float>::size(): 8 with AVX2,
    16 with AVX-512, 0 = no SIMD) are written as two vectors whose lane j is f32(f32(start + step * i0) + j * step)
    (i0 = the vector's first index; the sum in double), the tail by the scalar f32(start + step * i)."""
    n = math.ceil((end - start) / step)
    vals, i = [], 0
    if vec:
        while i <= n - 2 * vec:
            for i0 in (i, i + vec):
                base = f32(start + step * i0)
                vals += [f32(base + j * step) for j in range(vec)]
            i += 2 * vec
    vals += [f32(start + step * k) for k in range(i, n)]
    return vals


def recipe_buckets(n, side, vec):
    """bucketize(coords, boundaries, right=True) = how many boundaries are <= the coordinate."""
    step = float(np.float32(1) / np.float32(n))  # 1 / tgt_size: an int32 tensor divided -> float32
    coords = arange_f32(0.0, 1 - 1e-6, step, vec)
    bounds = arange_f32(1 / side, 1.0, 1 / side, vec)
    return [sum(1 for b in bounds if b <= c) for c in coords]


pb = {"cpu_capability": torch.__config__.show().split("CPU capability usage: ")[1].split()[0]}
for side in (10, 7, 70):
    counts = {"floor": [], "scalar": [], "vec8_avx2": [], "vec16_avx512": []}
    lengths_bad = []
    for n in range(1, 1101):
        tb, _ = torch_buckets(n, side)
        if len(tb) != n:
            lengths_bad.append([n, len(tb)])
        if tb != [(i * side) // n for i in range(n)]:
            counts["floor"].append(n)
        for key, vec in (("scalar", 0), ("vec8_avx2", 8), ("vec16_avx512", 16)):
            if tb != recipe_buckets(n, side, vec):
                counts[key].append(n)
    _, bnd = torch_buckets(1, side)
    pb[str(side)] = {
        "boundaries_count": int(bnd.numel()), "last_boundary": float(bnd[-1]),
        "patch_counts_where_arange_length_is_not_n": lengths_bad,
        "n_range_checked": [1, 1100],
        "mismatch_counts": {k: len(v) for k, v in counts.items()},
        "first_mismatches": {k: v[:15] for k, v in counts.items()},
    }
out["position_buckets"] = pb

# ---------------------------------------------------------------- 2-D sin-cos
rs = R.resampler
D = 16
pe = rs.get_2d_sincos_pos_embed(D, (3, 5))  # (H, W, D)
omega = 1.0 / 10000 ** (np.arange(D // 4, dtype=np.float64) / (D / 4))
h, w = 2, 4
x_half = np.concatenate([np.sin(w * omega), np.cos(w * omega)])
y_half = np.concatenate([np.sin(h * omega), np.cos(h * omega)])
big = rs.get_2d_sincos_pos_embed(256, (70, 70)).astype(np.float32)
gh, gw = np.mgrid[0:70, 0:70].astype(np.float64)
om = 1.0 / 10000 ** (np.arange(64, dtype=np.float64) / 64)
ref64 = np.concatenate([np.sin(gw[..., None] * om), np.cos(gw[..., None] * om),
                        np.sin(gh[..., None] * om), np.cos(gh[..., None] * om)], -1).astype(np.float32)
out["sincos"] = {
    "shape_h_w_d": list(pe.shape),
    "dtype": str(pe.dtype),
    "first_half_is_column_x": bool(np.allclose(pe[h, w, :D // 2], x_half, atol=1e-6)),
    "second_half_is_row_y": bool(np.allclose(pe[h, w, D // 2:], y_half, atol=1e-6)),
    "embed_256_grid_70_max_abs_diff_vs_float64_rounded": float(np.abs(big - ref64).max()),
    "embed_256_grid_70_values_differing_vs_float64_rounded": int((big != ref64).sum()),
}

# ---------------------------------------------------------------- rounding and image processor edge cases
ip = R.image_processing_minicpmv.MiniCPMVImageProcessor.from_pretrained(os.path.join(common.PUBLIC, "model"))
out["rounding"] = {
    "ensure_divide(63, 14)": ip.ensure_divide(63, 14), "ensure_divide(77, 14)": ip.ensure_divide(77, 14),
    "ensure_divide(91, 14)": ip.ensure_divide(91, 14), "ensure_divide(6, 14)": ip.ensure_divide(6, 14),
    "ensure_divide(21.0, 14)": ip.ensure_divide(21.0, 14), "ensure_divide(35, 14)": ip.ensure_divide(35, 14),
    "note": "Python round(): 4.5 -> 4, 5.5 -> 6, 6.5 -> 6, 1.5 -> 2, 2.5 -> 2 (half to even); never below one patch",
}

cg = {}
for (wd, ht) in [(50, 3), (50, 1), (3, 3), (1, 1), (50, 2), (3, 50), (1, 50)]:
    im = common.synth_smooth(wd, ht, 1)
    try:
        o = ip.preprocess(im, return_tensors=None)
        cg[f"{wd}x{ht}"] = {"ok": True, "tgt_sizes": np.asarray(o["tgt_sizes"][0]).tolist()}
    except Exception as e:  # noqa: BLE001
        cg[f"{wd}x{ht}"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
try:
    ip.preprocess([common.synth_smooth(40, 40, 2), common.synth_smooth(50, 3, 1)], return_tensors=None)
    cg["40x40 then 50x3"] = {"ok": True}
except Exception as e:  # noqa: BLE001
    cg["40x40 then 50x3"] = {"ok": False, "error": str(e)}
try:
    ip.preprocess([common.synth_smooth(50, 3, 1), common.synth_smooth(40, 40, 2)], return_tensors=None)
    cg["50x3 then 40x40"] = {"ok": True}
except Exception as e:  # noqa: BLE001
    cg["50x3 then 40x40"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
out["channel_guess"] = cg

ip_off = R.image_processing_minicpmv.MiniCPMVImageProcessor(
    **dict(json.load(open(os.path.join(common.PUBLIC, "model", "preprocessor_config.json"))), slice_mode=False))
im = common.synth_smooth(50, 45, 3)
o = ip_off.preprocess(im, return_tensors=None)
pv = o["pixel_values"][0][0]
arr = (np.asarray(im).astype(np.float32) / 255 - np.float32(0.5)) / np.float32(0.5)
out["slice_mode_off"] = {
    "image_wh": [50, 45], "tgt_sizes": np.asarray(o["tgt_sizes"][0]).tolist(), "pixel_values_shape": list(pv.shape),
    "placeholder": ip_off.get_slice_image_placeholder((50, 45), 0),
    "top_left_patch_equals_unresized_pixels": bool(np.array_equal(pv[:, :, :14], arr[:14, :14].transpose(2, 0, 1))),
}

# ---------------------------------------------------------------- padding in the batched vision tower
model, proc = common.load(os.path.join(common.PUBLIC, "model"))
ims = [common.synth_smooth(150, 70, 5)]
o = proc.image_processor.preprocess(ims, return_tensors="pt")
pvs, tgt = o["pixel_values"][0], o["tgt_sizes"][0].to(torch.int32)


def vision(pv_list, tgt):
    data = {"pixel_values": [pv_list], "tgt_sizes": [tgt], "image_bound": [torch.zeros((0, 2), dtype=torch.int64)],
            "input_ids": torch.zeros((1, 1), dtype=torch.int64)}
    cap = common.Capture()
    cap.hook(model.vpm, "vf")
    cap.hook(model.resampler, "ro")
    with torch.no_grad():
        model.get_vllm_embedding(data)
    cap.remove()
    return cap.d["vf"], cap.d["ro"]


vf_all, ro_all = vision(list(pvs), tgt)
dv, dr = 0.0, 0.0
for i in range(len(pvs)):
    vf1, ro1 = vision([pvs[i]], tgt[i:i + 1])
    L = int(tgt[i, 0] * tgt[i, 1])
    dv = max(dv, float((vf_all[i, :L] - vf1[0, :L]).abs().max()))
    dr = max(dr, float((ro_all[i] - ro1[0]).abs().max()))
out["padding"] = {"tgt_sizes": tgt.tolist(), "max_abs_diff_vision_features_batched_vs_alone": dv,
                  "max_abs_diff_resampler_out_batched_vs_alone": dr}

# ---------------------------------------------------------------- an independent re-implementation of the image path
def independent_image_path(model, pvs, tgt):
    """Vision tower + resampler from the weights, one slice at a time, written from MINICPMV.md (no padding, no
    batching): patches as (c, r, q)-flattened rows times the conv weight, bucketed position ids (the AVX2 recipe),
    pre-LN encoder layers with gelu(tanh), post-LN; resampler with ln_kv(kv_proj(x)), 2-D sin-cos added to the keys
    only, ln_q(query), one cross-attention, ln_post, x @ proj."""
    vp, rsm = model.vpm, model.resampler
    vc = model.config.vision_config
    p = vc.patch_size
    side = vc.image_size // p
    D = vc.hidden_size
    Wc = vp.embeddings.patch_embedding.weight.reshape(D, -1)
    feats, outs = [], []
    for pv, (th, tw) in zip(pvs, tgt.tolist()):
        L = th * tw
        x = torch.stack([pv[:, :, l * p:(l + 1) * p].reshape(-1) for l in range(L)])
        x = x @ Wc.T + vp.embeddings.patch_embedding.bias
        bh, bw = recipe_buckets(th, side, 8), recipe_buckets(tw, side, 8)
        ids = torch.tensor([bh[i] * side + bw[j] for i in range(th) for j in range(tw)])
        x = x + vp.embeddings.position_embedding.weight[ids]
        nh = vc.num_attention_heads
        hd = D // nh
        for layer in vp.encoder.layers:
            a = layer.self_attn
            h = torch.nn.functional.layer_norm(x, (D,), layer.layer_norm1.weight, layer.layer_norm1.bias, vc.layer_norm_eps)
            q = (h @ a.q_proj.weight.T + a.q_proj.bias).reshape(L, nh, hd).transpose(0, 1)
            k = (h @ a.k_proj.weight.T + a.k_proj.bias).reshape(L, nh, hd).transpose(0, 1)
            v = (h @ a.v_proj.weight.T + a.v_proj.bias).reshape(L, nh, hd).transpose(0, 1)
            w = torch.softmax(q @ k.transpose(1, 2) * hd ** -0.5, -1)
            o = (w @ v).transpose(0, 1).reshape(L, D)
            x = x + o @ a.out_proj.weight.T + a.out_proj.bias
            h = torch.nn.functional.layer_norm(x, (D,), layer.layer_norm2.weight, layer.layer_norm2.bias, vc.layer_norm_eps)
            h = torch.nn.functional.gelu(h @ layer.mlp.fc1.weight.T + layer.mlp.fc1.bias, approximate="tanh")
            x = x + h @ layer.mlp.fc2.weight.T + layer.mlp.fc2.bias
        x = torch.nn.functional.layer_norm(x, (D,), vp.post_layernorm.weight, vp.post_layernorm.bias, vc.layer_norm_eps)
        feats.append(x)
        E = rsm.embed_dim
        kv = x @ rsm.kv_proj.weight.T if isinstance(rsm.kv_proj, torch.nn.Linear) else x
        kv = torch.nn.functional.layer_norm(kv, (E,), rsm.ln_kv.weight, rsm.ln_kv.bias, 1e-6)
        gh, gw = np.mgrid[0:th, 0:tw]
        om = 1.0 / 10000 ** (np.arange(E // 4, dtype=np.float32) / np.float32(E / 2 / 2))
        pos = np.concatenate([np.sin(gw[..., None] * om), np.cos(gw[..., None] * om),
                              np.sin(gh[..., None] * om), np.cos(gh[..., None] * om)], -1).reshape(L, E)
        pos = torch.from_numpy(pos.astype(np.float32))
        qry = torch.nn.functional.layer_norm(rsm.query, (E,), rsm.ln_q.weight, rsm.ln_q.bias, 1e-6)
        Wq, Wk, Wv = rsm.attn.in_proj_weight.chunk(3)
        bq, bk, bv = rsm.attn.in_proj_bias.chunk(3)
        nh = rsm.num_heads
        hd = E // nh
        Q = qry.shape[0]
        q = (qry @ Wq.T + bq).reshape(Q, nh, hd).transpose(0, 1)
        k = ((kv + pos) @ Wk.T + bk).reshape(L, nh, hd).transpose(0, 1)
        v = (kv @ Wv.T + bv).reshape(L, nh, hd).transpose(0, 1)
        w = torch.softmax((q / math.sqrt(hd)) @ k.transpose(1, 2), -1)
        o = (w @ v).transpose(0, 1).reshape(Q, E) @ rsm.attn.out_proj.weight.T + rsm.attn.out_proj.bias
        o = torch.nn.functional.layer_norm(o, (E,), rsm.ln_post.weight, rsm.ln_post.bias, 1e-6)
        outs.append(o @ rsm.proj)
    return feats, outs


ind = {}
for label, mdir, size in [("public", os.path.join(common.PUBLIC, "model"), (150, 70)),
                          ("bf16", os.path.join(common.EXTRA, "minicpmv_bf16", "model"), (200, 60))]:
    m2, p2 = (model, proc) if label == "public" else common.load(mdir)
    o2 = p2.image_processor.preprocess([common.synth_smooth(*size, 9)], return_tensors="pt")
    pv2, tg2 = o2["pixel_values"][0], o2["tgt_sizes"][0].to(torch.int32)
    with torch.no_grad():
        data = {"pixel_values": [list(pv2)], "tgt_sizes": [tg2], "image_bound": [torch.zeros((0, 2), dtype=torch.int64)],
                "input_ids": torch.zeros((1, 1), dtype=torch.int64)}
        cap = common.Capture()
        cap.hook(m2.vpm, "vf")
        cap.hook(m2.resampler, "ro")
        m2.get_vllm_embedding(data)
        cap.remove()
        feats, outs = independent_image_path(m2, list(pv2), tg2)
    dv = max(float((cap.d["vf"][i, :f.shape[0]] - f).abs().max()) for i, f in enumerate(feats))
    dr = max(float((cap.d["ro"][i] - o).abs().max()) for i, o in enumerate(outs))
    ind[label] = {"image_wh": list(size), "tgt_sizes": tg2.tolist(), "max_abs_diff_vision_features": dv,
                  "max_abs_diff_resampler_out": dr, "max_abs_resampler_out": float(cap.d["ro"].abs().max())}
out["independent_image_path"] = ind

# ---------------------------------------------------------------- literal tags in user text
tok = proc.tokenizer
lt = {}
for text in ["(<image>./</image>)\nWhat does <slice> mean?", "(<image>./</image>)\nWhat is </image>?"]:
    try:
        r = proc([text], [[common.synth_smooth(40, 30, 4)]], return_tensors="pt")
        lt[text] = {"ok": True, "image_bound": r["image_bound"][0].tolist()}
    except Exception as e:  # noqa: BLE001
        lt[text] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
lt["'<slice>' tokenizes to"] = tok.encode("a <slice> b")
out["literal_tags"] = lt

gen = json.load(open(os.path.join(common.PUBLIC, "model", "generation_config.json")))
out["generation"] = {
    "chat_terminators": [tok.convert_tokens_to_ids(t) for t in model.terminators],
    "generation_config_eos": gen["eos_token_id"], "config_eos": model.config.eos_token_id,
    "config_bos": model.config.bos_token_id, "tokenizer_bos": tok.bos_token, "tokenizer_eos": tok.eos_token,
    "tokenizer_pad": tok.pad_token, "decode_pad_token_id": 0,
}
json.dump(out, open(os.path.join(common.HERE, "probes.json"), "w"), indent=1)
print(json.dumps(out, indent=1)[:6000])
