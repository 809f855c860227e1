"""Shared code for the Gemma 3 reference generators (transformers 4.50.0, PyTorch, float32, eager).

Run with:  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 nice -n 19 /usr/bin/python3 tools/references/gemma3/<script>.py
(tools/references/setup_env.sh builds /tmp/llava-env; Gemma's slow tokenizer also needs Debian's
python3-sentencepiece). Nothing here changes a computation of transformers: the model, processor and
generate() run unmodified; the hooks below only copy tensors out.
"""
import gzip
import io
import json
import os
import re
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import reflib  # noqa: E402  (sets torch threads to 1)
from reflib import data_uri, png_bytes, to_hf_messages, images_of, sha256_f32  # noqa: E402,F401
import transformers  # noqa: E402
from transformers import AutoProcessor, Gemma3ForConditionalGeneration  # noqa: E402
from transformers.models.gemma3 import modeling_gemma3  # noqa: E402
from safetensors.torch import save as st_save  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(REPO, "test", "fixtures", "golden"))
EXTRA = os.environ.get("GOLDEN_EXTRA", os.path.join(REPO, "test", "fixtures", "golden-extra"))
PUBLIC_SHARED = "/work/shared/golden/gemma3"

NOTE = ("stop token (if hit) is the last completion_token_id and is counted in completion_tokens; "
        "completion_text = decode(completion_token_ids, skip_special_tokens=True) by the slow (SentencePiece) "
        "GemmaTokenizer; logprobs = log_softmax of the raw float32 logits (no temperature / penalties); "
        "messages are OpenAI-style and are rendered with image_url parts mapped to {\"type\": \"image\"} "
        "(template_messages); the rendered prompt already starts with <bos>, so it is tokenized WITHOUT adding "
        "another <bos> (what the processor's apply_chat_template(tokenize=True) does)")


# ---------------------------------------------------------------- images
def synth_image(w, h, seed, noise=6.0, levels=None):
    """Synthetic RGB test image: gradients + a few shapes (+ optional noise / quantisation so that large
    images stay small as PNG). Deterministic."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    r = 127 + 120 * np.sin(x / max(w, 1) * np.pi * a + rng.uniform(0, 6))
    g = 127 + 120 * np.cos(y / max(h, 1) * np.pi * b + rng.uniform(0, 6))
    bl = 127 + 120 * np.sin((x + y) / max(w + h, 1) * np.pi * c)
    img = np.stack([r, g, bl], -1)
    for _ in range(5):
        cx, cy = rng.randint(0, w), rng.randint(0, h)
        rw, rh = rng.randint(2, max(3, w // 3)), rng.randint(2, max(3, h // 3))
        col = rng.randint(0, 256, 3)
        if rng.rand() < 0.5:
            img[max(0, cy - rh):cy + rh, max(0, cx - rw):cx + rw] = col
        else:
            mask = ((x - cx) / rw) ** 2 + ((y - cy) / rh) ** 2 < 1
            img[mask] = col
    if noise:
        img += rng.normal(0, noise, img.shape)
    if levels:
        q = 256.0 / levels
        img = np.floor(np.clip(img, 0, 255) / q) * q + q / 2
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- model / processor
def load(model_dir):
    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                           attn_implementation="eager")
    model.eval()
    proc = AutoProcessor.from_pretrained(model_dir, use_fast=False)
    proc._model_dir = model_dir
    assert type(proc.tokenizer).__name__ == "GemmaTokenizer", type(proc.tokenizer)
    assert type(proc.image_processor).__name__ == "Gemma3ImageProcessor"
    return model, proc


def layer_types(cfg):
    tc = cfg.text_config
    return ["sliding" if (i + 1) % tc.sliding_window_pattern else "global" for i in range(tc.num_hidden_layers)]


from g3lib_tok import IndependentGemmaBPE  # noqa: E402,F401


def expand_prompt(rendered, num_crops, image_seq_length, tok):
    """The processor's text expansion (processing_gemma3.py Gemma3Processor.__call__), re-implemented:
    each <start_of_image> with crops becomes 'Here is the original image <boi> and here are some crops to help
    you see better <boi> <boi> ...'; then every <boi> becomes '\\n\\n<boi>' + image_seq_length x
    '<image_soft_token>' + '<eoi>\\n\\n'."""
    boi, eoi, img = tok.boi_token, tok.eoi_token, tok.image_token
    idx = [m.start() for m in re.finditer(re.escape(boi), rendered)]
    assert len(idx) == len(num_crops), (idx, num_crops)
    s = rendered
    for n, i in reversed(list(zip(num_crops, idx))):
        if n:
            s = s[:i] + (f"Here is the original image {boi} and here are some crops to help you see better "
                         + " ".join([boi] * n)) + s[i + len(boi):]
    return s.replace(boi, f"\n\n{boi}{img * image_seq_length}{eoi}\n\n")


# ---------------------------------------------------------------- masks
class MaskRecorder:
    """Wraps modeling_gemma3.eager_attention_forward (looked up at call time by Gemma3Attention.forward) to
    copy out the additive mask each decoder layer really used (after the decoder layer's sliding-window edit
    and slicing to the key length). The computation itself is the original function."""

    def __init__(self):
        self.orig = modeling_gemma3.eager_attention_forward
        self.masks = {}
        self.active = False

    def __enter__(self):
        rec = self

        def wrapped(module, query, key, value, attention_mask, **kw):
            if rec.active and attention_mask is not None:
                m = attention_mask[:, :, :, : key.shape[-2]]
                rec.masks.setdefault(module.layer_idx, (m[0, 0] == 0).to(torch.uint8).clone())
            return rec.orig(module, query, key, value, attention_mask, **kw)

        modeling_gemma3.eager_attention_forward = wrapped
        return self

    def __exit__(self, *a):
        modeling_gemma3.eager_attention_forward = self.orig
        return False


def expected_allowed(token_type_ids, layer_type, window, per_image_runs=False):
    """What 4.50 computes (prefill, no padding), written from the source: causal, image tokens (token_type 1)
    see every image token of the sequence (all images, also later ones), and in sliding layers every key
    j <= i - window is masked (no upper bound: a bidirectional image key far ahead stays visible).
    per_image_runs=True gives the alternative 'bidirectional only inside one image' for comparison."""
    tt = np.asarray(token_type_ids)
    S = len(tt)
    i = np.arange(S)[:, None]
    j = np.arange(S)[None, :]
    allowed = j <= i
    if per_image_runs:
        run = np.zeros(S, dtype=np.int64)
        r, prev = 0, 0
        for k, t in enumerate(tt):
            if t == 1 and prev == 0:
                r += 1
            run[k] = r if t == 1 else 0
            prev = t
        bid = (run[:, None] == run[None, :]) & (run[:, None] > 0)
    else:
        bid = (tt[:, None] == 1) & (tt[None, :] == 1)
    allowed = allowed | bid
    if layer_type == "sliding":
        allowed = allowed & (j > i - window)
    return allowed.astype(np.uint8)


# ---------------------------------------------------------------- running one case
def prepare(proc, messages, images_kwargs=None):
    hf_messages = to_hf_messages(messages)
    rendered = proc.apply_chat_template(hf_messages, add_generation_prompt=True, tokenize=False)
    pngs = images_of(messages)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    kw = {"add_special_tokens": False}  # the template wrote <bos>
    if images_kwargs:
        kw["images_kwargs"] = dict(images_kwargs)
    inputs = proc(text=rendered, images=images if images else None, return_tensors="pt", **kw)
    return hf_messages, rendered, pngs, images, inputs


def forward_full(model, inputs, extra_ids=None):
    """The whole model on the prompt (+ extra generated ids), no cache; token_type_ids padded with 0."""
    ids = inputs["input_ids"]
    tt = inputs["token_type_ids"]
    if extra_ids:
        ext = torch.tensor([extra_ids], dtype=torch.int64)
        ids = torch.cat([ids, ext], 1)
        tt = torch.cat([tt, torch.zeros_like(ext)], 1)
    f = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": tt}
    if "pixel_values" in inputs:
        f["pixel_values"] = inputs["pixel_values"]
    return model(**f, use_cache=False)


def run_case(model, proc, messages, stop_ids, max_new=12, images_kwargs=None, keep_layer_outputs=False,
             keep_masks=False, allow_generate_quirk=False):
    """Returns (record, tensors, pngs) for one chat case."""
    hf_messages, rendered, pngs, images, inputs = prepare(proc, messages, images_kwargs)
    cfg = model.config
    tc = cfg.text_config
    lm = model.language_model
    input_ids = inputs["input_ids"]
    S = input_ids.shape[1]
    tt = inputs["token_type_ids"]
    T, rec = {}, {}
    num_crops = None

    # ---- vision intermediates (separate calls into the same modules the forward uses)
    with torch.no_grad():
        if images:
            pv = inputs["pixel_values"]
            T["pixel_values"] = pv
            vo = model.vision_tower(pixel_values=pv, output_hidden_states=True)
            T["vision_embeddings"] = vo.hidden_states[0]
            T["vision_last_hidden_state"] = vo.last_hidden_state
            mmp = model.multi_modal_projector
            x = vo.last_hidden_state.transpose(1, 2).reshape(pv.shape[0], -1, mmp.patches_per_image, mmp.patches_per_image)
            pooled4 = mmp.avg_pool(x.contiguous())
            T["projector_avg_pool_out"] = pooled4  # [images, vision hidden, side, side] (channels first)
            pooled = pooled4.flatten(2).transpose(1, 2)
            T["projector_soft_emb_norm_out"] = mmp.mm_soft_emb_norm(pooled)
            feats = model.get_image_features(pv)
            T["image_features"] = feats
            assert torch.equal(torch.matmul(T["projector_soft_emb_norm_out"], mmp.mm_input_projection_weight), feats)

        # ---- full forward (no cache) with hooks
        cap = {}
        hs = []

        def keep(name, t):  # hooks return None: they never replace an input or output
            cap.setdefault(name, t.detach().clone())

        for i, layer in enumerate(lm.model.layers):
            hs.append(layer.register_forward_hook(lambda mod, inp, out, i=i: keep(f"text_layer{i}_out", out[0])))
        hs.append(lm.model.norm.register_forward_hook(lambda mod, inp, out: keep("text_final_norm_out", out)))
        hs.append(lm.model.layers[0].register_forward_pre_hook(lambda mod, args: keep("inputs_embeds", args[0])))
        with MaskRecorder() as mr:
            mr.active = True
            t0 = time.time()
            out = forward_full(model, inputs)
            rec["forward_seconds"] = time.time() - t0
            mr.active = False
        for h in hs:
            h.remove()
    logits = out.logits[0]
    T["input_ids"] = input_ids
    T["prompt_ids"] = input_ids[0]
    T["token_type_ids"] = tt
    T["attention_mask"] = inputs["attention_mask"]
    T["inputs_embeds"] = cap["inputs_embeds"]
    with torch.no_grad():
        T["text_embeds_scaled"] = lm.get_input_embeddings()(input_ids)
    for i in range(tc.num_hidden_layers):
        T[f"text_layer{i}_out"] = cap[f"text_layer{i}_out"]
    T["text_final_norm_out"] = cap["text_final_norm_out"]
    T["logits"] = logits
    lt = layer_types(cfg)
    # masks really used vs the rule written from the source
    for i in range(tc.num_hidden_layers):
        got = mr.masks[i].numpy()
        exp = expected_allowed(tt[0].tolist(), lt[i], tc.sliding_window)
        assert got.shape == (S, S) and (got == exp).all(), f"layer {i} mask differs from the stated rule"
        T[f"text_layer{i}_allowed"] = torch.from_numpy(got)
    rec["masks_match_stated_rule"] = True

    # ---- greedy generation with the KV cache (HybridCache, as generation_config says)
    t0 = time.time()
    with torch.no_grad():
        g = model.generate(**inputs, max_new_tokens=max_new, do_sample=False, num_beams=1,
                           eos_token_id=stop_ids, pad_token_id=0, output_logits=True,
                           return_dict_in_generate=True, use_cache=True, temperature=None, top_p=None, top_k=None)
    rec["generate_seconds"] = time.time() - t0
    comp = g.sequences[0, S:].tolist()
    for j, t in enumerate(comp):
        if t in stop_ids:
            comp = comp[:j + 1]
            break
    step_logits = torch.stack([l[0] for l in g.logits])[:len(comp)].float()
    T["generated_ids"] = torch.tensor(comp, dtype=torch.int64)
    T["generate_step_logits"] = step_logits

    # ---- the same tokens without the KV cache: the whole sequence again at every step
    nocache = []
    rec["nocache_method"] = "full_model_input_ids"
    with torch.no_grad():
        for j in range(len(comp)):
            if cfg.image_token_index in comp[:j] and images:
                # a generated <image_soft_token> would be taken for an image placeholder by the full model:
                # run the decoder on [prompt inputs_embeds, embed_tokens(generated)] with the prompt's mask rule
                rec["nocache_method"] = "decoder_on_inputs_embeds (a generated token is the image token)"
                raise NotImplementedError("generated image token: not expected in these cases")
            o2 = forward_full(model, inputs, comp[:j])
            nocache.append(o2.logits[0, -1].float())
    nocache = torch.stack(nocache)
    departs = [j for j in range(len(comp)) if float((step_logits[j] - nocache[j]).abs().max()) > 1e-4]
    if departs or nocache.argmax(-1).tolist() != comp:
        # generate()'s HybridCache departs from the model's own full forward (a prompt shorter than
        # sliding_window, see hybrid_cache_quirk.py): keep what generate() did for information, and take the
        # greedy completion from the full forward at every step (what a correct port computes)
        assert allow_generate_quirk, ("cached decode departs from the full forward", departs)
        lpg = torch.log_softmax(step_logits, -1)
        tg = torch.topk(lpg, 5, dim=-1)
        rec["hf_generate_hybrid_cache"] = {
            "note": "what transformers 4.50 generate() (HybridCache) produced; it departs from the full forward from "
                    "the query position sliding_window - 1 on because the prompt is shorter than the window",
            "completion_ids": comp,
            "first_departing_step": departs[0] if departs else None,
            "first_departing_query_position": (S + departs[0] - 1) if departs else None,
            "max_abs_diff_vs_full_forward_same_tokens": float((step_logits - nocache).abs().max()),
            "top5": [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                     for ti, tv in zip(tg.indices.tolist(), tg.values.tolist())],
        }
        T["hf_generate_step_logits"] = step_logits
        comp, steps = [], []
        with torch.no_grad():
            for j in range(max_new):
                lg = forward_full(model, inputs, comp).logits[0, -1].float()
                steps.append(lg)
                comp.append(int(lg.argmax()))
                if comp[-1] in stop_ids:
                    break
        step_logits = nocache = torch.stack(steps)
        T["generated_ids"] = torch.tensor(comp, dtype=torch.int64)
        T["generate_step_logits"] = step_logits
        rec["completion_method"] = "greedy loop on the full forward without cache (generate() departs here, see hf_generate_hybrid_cache)"
    else:
        rec["completion_method"] = "generate() with HybridCache; every step re-checked by the full forward without cache"
    T["nocache_step_logits"] = nocache

    lp = torch.log_softmax(step_logits, -1)
    T["generate_step_logprobs"] = lp
    top = torch.topk(lp, 5, dim=-1)
    T["top5_ids"] = top.indices.to(torch.int64)
    T["top5_logprobs"] = top.values
    chosen = lp[torch.arange(len(comp)), torch.tensor(comp)]
    T["chosen_logprobs"] = chosen
    srt = torch.sort(step_logits, -1, descending=True).values
    margins = (srt[:, 0] - srt[:, 1]).tolist()

    # ---- tokenizer checks
    tok = proc.tokenizer
    ind = IndependentGemmaBPE(os.path.join(proc._model_dir, "tokenizer.json"))
    if images:
        # num_crops per image, recomputed by a second processor call (the first one popped it)
        from transformers.models.gemma3.processing_gemma3 import Gemma3ProcessorKwargs
        merged = proc._merge_kwargs(Gemma3ProcessorKwargs, tokenizer_init_kwargs=tok.init_kwargs,
                                    images_kwargs=dict(images_kwargs or {}))["images_kwargs"]
        rec["images_kwargs_effective"] = {k: v for k, v in merged.items() if k.startswith(("do_pan", "pan_"))}
        ip = proc.image_processor(images, **merged)
        num_crops = [int(n) for n in ip["num_crops"][0]]
        if len(num_crops) != len(images):  # pan-and-scan off: the image processor gives one [0] per batch entry
            assert num_crops == [0]
            num_crops = [0] * len(images)
        assert len(ip["pixel_values"]) == inputs["pixel_values"].shape[0] == len(images) + sum(num_crops)
    expanded = expand_prompt(rendered, num_crops or [], proc.image_seq_length, tok) if images else rendered
    ids_slow = tok(expanded, add_special_tokens=False)["input_ids"]
    ids_ind = ind.encode(expanded)
    assert ids_slow == input_ids[0].tolist(), "expanded prompt re-tokenized differs from the processor's ids"
    assert ids_ind == input_ids[0].tolist(), ("independent tokenizer.json BPE disagrees", ids_ind, input_ids[0].tolist())
    decoded_expanded = tok.decode(input_ids[0].tolist(), skip_special_tokens=False)

    text = tok.decode(comp, skip_special_tokens=True)
    raw = ind.raw_bytes(comp)
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    n_img_tok = int((input_ids[0] == cfg.image_token_index).sum())
    per_image = []
    if images:
        for n in num_crops:
            per_image.append(cfg.mm_tokens_per_image * (1 + n))
        assert sum(per_image) == n_img_tok
        assert T["image_features"].shape[0] == sum(1 + n for n in num_crops)

    rec.update({
        "template_messages": hf_messages,
        "rendered_prompt": rendered,
        "expanded_prompt": expanded,
        "expanded_prompt_equals_decoded_ids": decoded_expanded == expanded,
        "prompt_ids": input_ids[0].tolist(),
        "token_type_ids": tt[0].tolist(),
        "prompt_tokens": S,
        "layer_types": lt,
        "sliding_window": tc.sliding_window,
        "image_token_positions_count": n_img_tok,
        "image_token_runs": runs_of(input_ids[0].tolist(), cfg.image_token_index),
        "completion_ids": comp,
        "completion_tokens": len(comp),
        "completion_text": text,
        "completion_text_keep_special": tok.decode(comp, skip_special_tokens=False),
        "completion_tokens_str": tok.convert_ids_to_tokens(comp),
        "completion_text_by_decoder": {
            "slow_GemmaTokenizer_sentencepiece": text,
            "tokenizers_rust_bytefallback_semantics": ind.decode_rust_semantics(comp),
            "utf8_bytes_decoded_with_replacement": raw.decode("utf-8", errors="replace"),
        },
        "completion_bytes_hex": raw.hex(),
        "completion_bytes_valid_utf8": valid,
        "finish_reason": "stop" if comp[-1] in stop_ids else "length",
        "stop_token_ids": list(stop_ids),
        "max_new_tokens": max_new,
        "top5": [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                 for ti, tv in zip(T["top5_ids"].tolist(), T["top5_logprobs"].tolist())],
        "chosen_logprobs": chosen.tolist(),
        "top1_top2_logit_margins": margins,
        "min_top1_top2_logit_margin": min(margins),
        "logits_last": logits[-1].tolist(),
        "logits_last_argmax": int(logits[-1].argmax()),
        "max_abs_diff_cache_vs_nocache_step_logits": float((step_logits - nocache).abs().max()),
        "max_abs_diff_forward_last_vs_step0": float((step_logits[0] - logits[-1]).abs().max()),
        "independent_tokenizer_json_bpe_prompt_ids_match": True,
        "slow_tokenizer_prompt_ids_match": True,
        "completion_contains_image_token": cfg.image_token_index in comp,
        "images_kwargs": images_kwargs or {},
    })
    if images:
        pv = T["pixel_values"]
        rec["image_sizes_wh"] = [list(im.size) for im in images]
        rec["num_crops"] = num_crops
        rec["num_image_tokens"] = per_image
        rec["pixel_values_shape"] = list(pv.shape)
        rec["pixel_values_sum"] = float(pv.double().sum())
        rec["pixel_values_first8"] = pv.flatten()[:8].tolist()
        rec["pixel_values_sha256_f32le"] = sha256_f32(pv)
    else:
        rec["image_sizes_wh"] = []
        rec["num_crops"] = []
        rec["num_image_tokens"] = []
    if not keep_layer_outputs:
        for i in range(tc.num_hidden_layers):
            T[f"text_layer{i}_out"] = T[f"text_layer{i}_out"][:, -1:]
        T["text_final_norm_out"] = T["text_final_norm_out"][:, -1:]
    if not keep_masks:
        for i in range(tc.num_hidden_layers):
            T.pop(f"text_layer{i}_allowed")
    return rec, T, pngs


def runs_of(ids, tid):
    """[start, length] of each run of tid."""
    runs, start = [], None
    for k, t in enumerate(ids + [None]):
        if t == tid and start is None:
            start = k
        elif t != tid and start is not None:
            runs.append([start, k - start])
            start = None
    return runs


# ---------------------------------------------------------------- writing
def st_bytes(T):
    out = {}
    for k, v in T.items():
        v = v.detach().cpu().contiguous()
        if v.dtype == torch.uint8:
            out[k] = v
        elif v.is_floating_point():
            out[k] = v.to(torch.float32)
        else:
            out[k] = v.to(torch.int64)
    return st_save(out)


DROP = ("vision_embeddings", "generate_step_logprobs", "text_embeds_scaled", "logits")


def write_case(case_dir, name, messages, rec, T, pngs, extra_oracle=None, drop=DROP, gzip_pixels=True):
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):
        os.remove(os.path.join(case_dir, f))
    for i, p in enumerate(pngs):
        open(os.path.join(case_dir, f"image{i}.png"), "wb").write(p)
    open(os.path.join(case_dir, "prompt.txt"), "w", encoding="utf-8").write(rec["rendered_prompt"])
    T = dict(T)
    if "logits" in T:
        T["logits_last"] = T["logits"][-1]
    for k in drop:
        T.pop(k, None)
    files = {}
    if "pixel_values" in T and gzip_pixels:
        pv = T.pop("pixel_values")
        raw = st_save({"pixel_values": pv.contiguous().float()})
        with open(os.path.join(case_dir, "pixel_values.safetensors.gz"), "wb") as f:
            f.write(gzip.compress(raw, compresslevel=9, mtime=0))
        files["pixel_values.safetensors.gz"] = ["pixel_values"]
    open(os.path.join(case_dir, "tensors.safetensors"), "wb").write(st_bytes(T))
    files["tensors.safetensors"] = sorted(T.keys())
    oracle = {"case": name, "messages": messages}
    oracle.update(rec)
    if extra_oracle:
        oracle.update(extra_oracle)
    oracle["arrays"] = {k: list(v.shape) for k, v in T.items()}
    if "pixel_values.safetensors.gz" in files:
        oracle["arrays"]["pixel_values"] = rec["pixel_values_shape"]
    oracle["tensors"] = files
    json.dump(oracle, open(os.path.join(case_dir, "oracle.json"), "w"), indent=1, ensure_ascii=True)
    return oracle


def chat_entry(name, rel_dir, messages, rec, extra=None):
    rp = {"max_tokens": rec["max_new_tokens"], "temperature": 0, "logprobs": True, "top_logprobs": 5}
    e = {
        "name": name,
        "dir": rel_dir,
        "messages": messages,
        "template_messages": rec["template_messages"],
        "request_params": rp,
        "image_files": [f"{rel_dir}/image{i}.png" for i in range(len(rec["image_sizes_wh"]))],
        "image_sizes_wh": rec["image_sizes_wh"],
        "num_crops": rec["num_crops"],
        "num_image_tokens": rec["num_image_tokens"],
        "rendered_prompt": rec["rendered_prompt"],
        "expected": {
            "prompt_tokens": rec["prompt_tokens"],
            "prompt_token_ids": rec["prompt_ids"],
            "completion_text": rec["completion_text"],
            "completion_token_ids": rec["completion_ids"],
            "completion_tokens": rec["completion_tokens"],
            "finish_reason": rec["finish_reason"],
            "completion_text_is_lossy_utf8": not rec["completion_bytes_valid_utf8"],
            "top_logprobs": rec["top5"],
            "completion_text_by_decoder": rec["completion_text_by_decoder"],
        },
        "min_top1_top2_logit_margin": rec["min_top1_top2_logit_margin"],
    }
    if rec["images_kwargs"]:
        e["images_kwargs"] = rec["images_kwargs"]
    if extra:
        e.update(extra)
    return e


def versions():
    v = reflib.versions()
    import sentencepiece
    v["sentencepiece"] = sentencepiece.__version__
    return v
