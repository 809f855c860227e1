"""Checks, numerically, the parts of the reference semantics that a port is most likely to get wrong,
on the public checkpoint (golden/mllama/model) and the BF16 one (golden-extra/mllama_bf16/model).
Writes tools/references/mllama/semantics.json; docs/families/mllama.md and golden-extra/MLLAMA.md cite it.
"""
import io
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import gen_cases  # noqa: E402
from transformers.models.mllama import modeling_mllama as MM  # noqa: E402

R = {}


def log(k, v):
    R[k] = v
    print(k, json.dumps(v)[:300], flush=True)


def numpy_preprocess(pil, ip):
    """The image processor written out with numpy + PIL only (what a port has to do), for a bit-exact comparison."""
    tile = ip.size["height"]
    T = ip.max_image_tiles
    ars = [(h, w) for h in range(1, T + 1) for w in range(1, T + 1) if h * w <= T]  # (tiles high, tiles wide)
    W, H = pil.size
    scales = []
    for (th, tw) in ars:
        sh, sw = th * tile / H, tw * tile / W
        scales.append(sh if sw > sh else sw)  # the limiting side
    ups = [s for s in scales if s >= 1]
    sel = min(ups) if ups else max(s for s in scales if s < 1)
    cands = [(ar, ar[0] * ar[1]) for ar, s in zip(ars, scales) if s == sel]
    (th, tw) = min(cands, key=lambda c: c[1])[0]  # smallest area; first on ties (np.argmin)
    ch, cw = th * tile, tw * tile
    tw_ = min(max(W, tile), cw)
    th_ = min(max(H, tile), ch)
    sh, sw = th_ / H, tw_ / W
    if sw < sh:
        nw, nh = tw_, min(math.floor(H * sw) or 1, th_)
    else:
        nh, nw = th_, min(math.floor(W * sh) or 1, tw_)
    img = pil.convert("RGB").resize((nw, nh), resample=Image.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)  # H, W, 3
    canvas = np.zeros((ch, cw, 3), dtype=np.uint8)  # pad with 0 at the bottom / right (before normalising)
    canvas[:nh, :nw] = a
    x = (canvas.astype(np.float64) * ip.rescale_factor).astype(np.float32)
    x = (x - np.array(ip.image_mean, dtype=np.float32)) / np.array(ip.image_std, dtype=np.float32)
    x = x.transpose(2, 0, 1)  # 3, H, W
    tiles = x.reshape(3, th, tile, tw, tile).transpose(1, 3, 0, 2, 4).reshape(th * tw, 3, tile, tile)  # row-major
    out = np.zeros((T, 3, tile, tile), dtype=np.float32)
    out[:th * tw] = tiles
    return out, ars.index((th, tw)) + 1, th * tw


def main():
    pub_dir = os.path.join(common.GOLDEN, "mllama", "model")
    bf_dir = os.path.join(common.EXTRA, "mllama_bf16", "model")
    model, proc = common.load(pub_dir)
    tok = proc.tokenizer

    # ---------------- prompt / template
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "Hi"}]}]
    rendered = common.render(proc, msgs, {"date_string": common.DATE})
    log("double_bos_if_processor_called_with_default_add_special_tokens",
        proc(text=rendered, images=[Image.new("RGB", (40, 40))], return_tensors="pt")["input_ids"][0, :3].tolist())
    log("processor_call_with_add_special_tokens_false",
        proc(text=rendered, images=[Image.new("RGB", (40, 40))], add_special_tokens=False, return_tensors="pt")["input_ids"][0, :3].tolist())
    log("build_string_from_input_on_prompt_without_bos",
        proc.tokenizer.convert_ids_to_tokens(proc(text="<|image|>Hi", images=[Image.new("RGB", (40, 40))],
                                                  return_tensors="pt")["input_ids"][0].tolist()))
    tm = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    via_tok = tok.apply_chat_template(tm, chat_template=proc.chat_template, add_generation_prompt=True, tokenize=False,
                                      date_string=common.DATE)
    via_proc = proc.apply_chat_template(tm, add_generation_prompt=True, tokenize=False, date_string=common.DATE)
    log("processor_apply_chat_template_passes_date_string", via_proc == via_tok)
    import datetime
    today = datetime.datetime.now().strftime("%d %b %Y")
    log("processor_apply_chat_template_writes_todays_date_instead", ("Today Date: " + today) in via_proc)
    log("tokenizer_apply_chat_template_today_line", [ln for ln in via_tok.split("\n") if ln.startswith("Today Date")])
    parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
             {"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    r_parts = tok.apply_chat_template(parts, chat_template=proc.chat_template, add_generation_prompt=True,
                                      tokenize=False, date_string=common.DATE)
    log("system_content_as_parts_renders", r_parts.split("Today Date: " + common.DATE + "\n\n")[1].split("<|eot_id|>")[0])
    r_user_parts = tok.apply_chat_template([tm[0], parts[1]], chat_template=proc.chat_template,
                                           add_generation_prompt=True, tokenize=False, date_string=common.DATE)
    log("user_string_content_renders_as_parts", r_user_parts == via_tok)
    log("no_date_string_default_in_reference_env_is_strftime_now_not_26_Jul_2024",
        "Today Date: 26 Jul 2024" not in tok.apply_chat_template(tm, chat_template=proc.chat_template,
                                                                 add_generation_prompt=True, tokenize=False))
    try:
        tok.apply_chat_template([{"role": "system", "content": "x"}, msgs[0] | {"content": [{"type": "image"}]}],
                                chat_template=proc.chat_template, tokenize=False)
        log("system_message_with_image_raises", False)
    except Exception as e:  # noqa: BLE001
        log("system_message_with_image_raises", str(e))

    # ---------------- image processor, written out in numpy: bit-exact on every case image
    n_img = 0
    worst = 0.0
    for fam, mdir in (("mllama", pub_dir), ("mllama_bf16", bf_dir)):
        _, p = (None, proc) if fam == "mllama" else (None, common.load(bf_dir)[1])
        for name, messages, _ in gen_cases.cases_for(fam):
            for png in common.images_of(messages):
                pil = Image.open(io.BytesIO(png)).convert("RGB")
                ref = p.image_processor(pil, return_tensors="np")
                mine, arid, nt = numpy_preprocess(pil, p.image_processor)
                assert ref["aspect_ratio_ids"][0, 0] == arid and ref["num_tiles"][0][0] == nt, (name, arid, nt)
                worst = max(worst, float(np.abs(ref["pixel_values"][0, 0] - mine).max()))
                n_img += 1
        pv = p.image_processor(Image.new("RGB", (84, 40), (0, 0, 0)), return_tensors="np")["pixel_values"][0, 0]
        if fam == "mllama":
            log("padding_region_value_per_channel", [float(pv[2, c, 0, -1]) for c in range(3)])
            log("minus_mean_over_std", [float(-np.float32(m) / np.float32(s)) for m, s in
                                        zip(p.image_processor.image_mean, p.image_processor.image_std)])
            log("empty_tile_is_exactly_zero", bool((pv[3] == 0).all()))
    log("numpy_preprocess_images_checked", n_img)
    log("numpy_preprocess_max_abs_diff", worst)

    # ---------------- vision tower: real tokens attend to padding patches and padding tiles
    vm = model.vision_model
    pil = Image.open(io.BytesIO(common.images_of(gen_cases.cases_for("mllama")[2][1])[0])).convert("RGB")  # 3 tiles
    enc = proc.image_processor(pil, return_tensors="pt")
    with torch.no_grad():
        a = vm(enc["pixel_values"], enc["aspect_ratio_ids"], enc["aspect_ratio_mask"])[0]
        pv2 = enc["pixel_values"].clone()
        pv2[0, 0, 3] = torch.randn(pv2[0, 0, 3].shape, generator=torch.Generator().manual_seed(0))
        b = vm(pv2, enc["aspect_ratio_ids"], enc["aspect_ratio_mask"])[0]
    log("vision_real_tiles_change_when_the_empty_tile_pixels_change_max_abs", float((a[0, 0, :3] - b[0, 0, :3]).abs().max()))
    L = 24
    m = MM._prepare_aspect_ratio_attention_mask(enc["aspect_ratio_mask"].reshape(1, -1), 17, L, torch.float32)[0, 0]
    log("vision_mask_row0_masked_keys", int((m[0] != 0).sum()))
    log("vision_mask_padding_patch_row_masked_keys", int((m[17] != 0).sum()))
    log("vision_mask_empty_tile_row_masked_keys", int((m[3 * L] != 0).sum()))
    # intermediate_layers_indices: hidden_states[i] is the INPUT of local layer i (index 0 = after layernorm_pre + pad)
    with torch.no_grad():
        o = vm(enc["pixel_values"], enc["aspect_ratio_ids"], enc["aspect_ratio_mask"], output_hidden_states=True)
    inter = o[0][..., 32:]
    cap = {}
    hs = [vm.transformer.layers[i].register_forward_hook(lambda mod, i_, out, i=i: cap.__setitem__(i, out[0])) for i in range(2)]
    with torch.no_grad():
        vm(enc["pixel_values"], enc["aspect_ratio_ids"], enc["aspect_ratio_mask"])
    for h in hs:
        h.remove()
    # public indices [1, 2]: outputs of local layers 0 and 1, stacked on a new LAST axis then flattened: channel
    # c of index k lands at 32 + c * K + k (K = number of indices), i.e. interleaved, not concatenated
    K = len(vm.intermediate_layers_indices)
    l0 = cap[0].reshape(1, 4, L, 32)[:, :, :17]
    l1 = cap[1].reshape(1, 4, L, 32)[:, :, :17]
    inter5 = inter.reshape(1, 4, 17, 32, K)
    log("vision_intermediate_layout_interleaved_exact", bool(torch.equal(inter5[..., 0], l0) and torch.equal(inter5[..., 1], l1)))
    log("vision_intermediate_index_means_input_of_layer", {"indices": vm.intermediate_layers_indices,
                                                           "index1_is_layer0_output": bool(torch.equal(inter5[..., 0], l0))})

    # ---------------- text: rows without an image, gates, generated rows
    case = [c for c in gen_cases.cases_for("mllama") if c[0] == "text_before_image"][0]
    inputs = proc(text=common.render(proc, case[1], gen_cases.CTK),
                  images=[Image.open(io.BytesIO(p)).convert("RGB") for p in common.images_of(case[1])],
                  add_special_tokens=False, return_tensors="pt")
    lm = model.language_model
    ci = model.config.text_config.cross_attention_layers[0]
    layer = lm.model.layers[ci]
    got = {}
    hooks = [layer.cross_attn.register_forward_hook(lambda mod, i_, out: got.__setitem__("attn", out[0])),
             layer.register_forward_pre_hook(lambda mod, a_: got.__setitem__("x", a_[0])),
             layer.register_forward_hook(lambda mod, i_, out: got.__setitem__("y", out[0])),
             model.multi_modal_projector.register_forward_hook(lambda mod, i_, out: got.__setitem__("proj", out))]
    with torch.no_grad():
        model(**inputs, use_cache=False)
    for h in hooks:
        h.remove()
    S = inputs["input_ids"].shape[1]
    rows0 = [i for i in range(S) if not inputs["cross_attention_mask"][0, i].any()]
    ca = layer.cross_attn
    with torch.no_grad():
        xs = layer.input_layernorm(got["x"])
        q = ca.q_norm(ca.q_proj(xs).view(1, S, ca.num_heads, ca.head_dim).transpose(1, 2))
        states = got["proj"].reshape(1, -1, got["proj"].shape[-1])  # all images, all 4 tiles, all 17 tokens
        k = ca.k_norm(MM.repeat_kv(ca.k_proj(states).view(1, -1, ca.num_key_value_heads, ca.head_dim).transpose(1, 2),
                                   ca.num_key_value_groups))
        v = MM.repeat_kv(ca.v_proj(states).view(1, -1, ca.num_key_value_heads, ca.head_dim).transpose(1, 2),
                         ca.num_key_value_groups)
        w = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(ca.head_dim), -1)  # NO mask at all
        unmasked = ca.o_proj((w @ v).transpose(1, 2).reshape(1, S, -1))
        log("rows_without_image", rows0)
        log("rows_without_image_cross_attn_equals_unmasked_attention_over_all_vision_tokens_max_abs_diff",
            float((unmasked[0, rows0] - got["attn"][0, rows0]).abs().max()))
        log("vision_tokens_attended_by_rows_without_image", int(k.shape[2]))
        log("rows_without_image_cross_attn_out_max_abs", float(got["attn"][0, rows0].abs().max()))
        h1 = got["x"] + layer.cross_attn_attn_gate.tanh() * got["attn"]
        log("rows_without_image_layer_out_is_residual_plus_gated_attn_only_max_abs_diff",
            float((h1[0, rows0] - got["y"][0, rows0]).abs().max()))
        mlp = layer.mlp(layer.post_attention_layernorm(h1))
        h2 = h1 + layer.cross_attn_mlp_gate.tanh() * mlp
        rows1 = [i for i in range(S) if i not in rows0]
        log("rows_with_image_layer_out_is_residual_plus_gated_attn_plus_gated_mlp_max_abs_diff",
            float((h2[0, rows1] - got["y"][0, rows1]).abs().max()))

    # cross K/V are computed once at prefill (k_norm applied, KV heads repeated) and reused while decoding
    with torch.no_grad():
        g = model.generate(**inputs, max_new_tokens=4, do_sample=False, return_dict_in_generate=True,
                           eos_token_id=[], pad_token_id=291, temperature=None, top_p=None, top_k=None)
    pkv = g.past_key_values
    log("cache_shapes_after_4_new_tokens", {"self_layer0_k": list(pkv.key_cache[0].shape),
                                            f"cross_layer{ci}_k": list(pkv.key_cache[ci].shape)})
    log("cross_cache_equals_knorm_kproj_of_projector_output_max_abs_diff", float((pkv.key_cache[ci] - k).abs().max()))

    # rope llama3: the inverse frequencies from the formula in float64 vs the model's float32 buffer
    tc = model.config.text_config
    hd = tc.hidden_size // tc.num_attention_heads
    inv = 1.0 / (tc.rope_theta ** (np.arange(0, hd, 2) / hd))
    rs = tc.rope_scaling
    lo, hi = rs["original_max_position_embeddings"] / rs["low_freq_factor"], rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < hi:
            out.append(f)
        elif wl > lo:
            out.append(f / rs["factor"])
        else:
            s = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
            out.append((1 - s) * f / rs["factor"] + s * f)
    mine = np.array(out)
    theirs = lm.model.rotary_emb.inv_freq.double().numpy()
    log("rope_llama3_inv_freq_reference_float32", theirs.astype(np.float32).tolist())
    log("rope_llama3_inv_freq_float64_formula_max_rel_diff", float(np.abs(mine - theirs).max() / np.abs(mine).max()))
    log("rope_llama3_branches_head_dim_%d" % hd, ["high(keep)" if 2 * math.pi / f < hi else "low(/factor)" if 2 * math.pi / f > lo
                                                  else "medium(smooth)" for f in inv])
    log("rope_attention_scaling", float(lm.model.rotary_emb.attention_scaling))
    log("embed_tokens_rows_vs_lm_head_rows", [int(lm.model.embed_tokens.weight.shape[0]), int(lm.lm_head.weight.shape[0])])
    json.dump(R, open(os.path.join(common.HERE, "semantics.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
