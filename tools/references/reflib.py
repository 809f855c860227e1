"""Shared code for the LLaVA reference generators (transformers 4.50.0, PyTorch, float32, eager).

Run with:  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 nice -n 19 /usr/bin/python3 tools/<script>.py
(see tools/setup_env.sh for building /tmp/llava-env).
"""
import base64
import gzip
import hashlib
import io
import json
import os
import time

import numpy as np
import torch
from PIL import Image

import transformers
from transformers import AutoProcessor
from safetensors.torch import save as st_save

torch.set_num_threads(1)
MAX_NEW = 12
NOTE = ("stop token (if hit) is the last completion_token_id and is counted in completion_tokens; "
        "completion_text = decode(completion_token_ids, skip_special_tokens=True); logprobs = log_softmax of "
        "the raw float32 logits (no temperature / penalties). messages are OpenAI-style; before the chat "
        "template they are converted with to_hf_messages() (string content -> one text part, image_url part "
        "-> {type: image}), see README")


# ---------------------------------------------------------------- messages / images
def png_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def decode_data_uri(uri):
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


def to_hf_messages(messages):
    out = []
    for m in messages:
        c = m["content"]
        if isinstance(c, str):
            parts = [{"type": "text", "text": c}]
        else:
            parts = []
            for p in c:
                if p["type"] == "image_url":
                    parts.append({"type": "image"})
                elif p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                else:
                    raise ValueError(p["type"])
        out.append({"role": m["role"], "content": parts})
    return out


def images_of(messages):
    pngs = []
    for m in messages:
        if isinstance(m["content"], str):
            continue
        for p in m["content"]:
            if p["type"] == "image_url":
                pngs.append(decode_data_uri(p["image_url"]["url"]))
    return pngs


def synth_image(w, h, seed):
    """Synthetic RGB test image: gradients + a few shapes (deterministic)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    r = 127 + 120 * np.sin(x / max(w, 1) * np.pi * a + rng.uniform(0, 6))
    g = 127 + 120 * np.cos(y / max(h, 1) * np.pi * b + rng.uniform(0, 6))
    bl = 127 + 120 * np.sin((x + y) / max(w + h, 1) * np.pi * c)
    img = np.stack([r, g, bl], -1)
    for _ in range(4):
        cx, cy = rng.randint(0, w), rng.randint(0, h)
        rw, rh = rng.randint(2, max(3, w // 3)), rng.randint(2, max(3, h // 3))
        col = rng.randint(0, 256, 3)
        if rng.rand() < 0.5:
            img[max(0, cy - rh):cy + rh, max(0, cx - rw):cx + rw] = col
        else:
            mask = ((x - cx) / rw) ** 2 + ((y - cy) / rh) ** 2 < 1
            img[mask] = col
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- model / processor
def load(model_dir, cls):
    model = cls.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    proc = AutoProcessor.from_pretrained(model_dir, use_fast=False)
    proc._model_dir = model_dir
    return model, proc


def sha256_f32(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().astype("<f4").tobytes()).hexdigest()


# ---------------------------------------------------------------- independent BPE check
class IndependentBPE:
    """Byte-level BPE encoder reading tokenizer.json directly (not transformers' code)."""

    def __init__(self, path):
        import regex
        t = json.load(open(path, encoding="utf-8"))
        self.vocab = t["model"]["vocab"]
        merges = t["model"]["merges"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.added = {a["content"]: a["id"] for a in t["added_tokens"]}
        pre = t["pre_tokenizer"]
        if pre["type"] == "ByteLevel":
            pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
        else:
            pat = [p for p in pre["pretokenizers"] if p["type"] == "Split"][0]["pattern"]["Regex"]
        self.pat = regex.compile(pat)
        self.nfc = (t.get("normalizer") or {}).get("type") == "NFC"
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        self.b2u = {b: chr(c) for b, c in zip(bs, cs)}
        self.bos = None
        pp = t.get("post_processor")
        if pp and pp.get("type") == "TemplateProcessing":
            first = pp["single"][0]
            if "SpecialToken" in first:
                self.bos = pp["special_tokens"][first["SpecialToken"]["id"]]["ids"][0]

    def _bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        import unicodedata
        ids = [] if self.bos is None else [self.bos]
        specials = sorted(self.added, key=len, reverse=True)
        i = 0
        buf = ""

        def flush(s):
            if not s:
                return
            if self.nfc:
                s = unicodedata.normalize("NFC", s)
            for piece in self.pat.findall(s):
                ids.extend(self._bpe("".join(self.b2u[b] for b in piece.encode("utf-8"))))

        while i < len(text):
            for sp in specials:
                if text.startswith(sp, i):
                    flush(buf)
                    buf = ""
                    ids.append(self.added[sp])
                    i += len(sp)
                    break
            else:
                buf += text[i]
                i += 1
        flush(buf)
        return ids


# ---------------------------------------------------------------- running one case
class Capture:
    def __init__(self):
        self.d = {}
        self.handles = []

    def hook(self, module, name, first=True):
        def fn(mod, inp, out):
            o = out[0] if (first and isinstance(out, (tuple, list))) else out
            self.d.setdefault(name, o.detach().clone())
        self.handles.append(module.register_forward_hook(fn))

    def remove(self):
        for h in self.handles:
            h.remove()


def run_case(model, proc, messages, stop_ids, family, chat_template_kwargs=None, images_kwargs=None):
    """Returns (record, tensors) for one chat case."""
    hf_messages = to_hf_messages(messages)
    rendered = proc.apply_chat_template(hf_messages, add_generation_prompt=True, tokenize=False,
                                        **(chat_template_kwargs or {}))
    pngs = images_of(messages)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    kw = {}
    if images_kwargs:
        kw["images_kwargs"] = images_kwargs
    inputs = proc(text=rendered, images=images if images else None, return_tensors="pt", **kw)
    input_ids = inputs["input_ids"]
    S = input_ids.shape[1]
    fwd = {k: v for k, v in inputs.items() if k not in ("attention_mask",)}
    fwd["attention_mask"] = inputs["attention_mask"]
    cfg = model.config
    lm = model.language_model
    T = {}
    rec = {}

    # ---- intermediates (separate calls into the same modules the forward uses)
    with torch.no_grad():
        if images:
            pv = inputs["pixel_values"]
            T["pixel_values"] = pv
            if family == "llava":
                vout = model.vision_tower(pv, output_hidden_states=True)
                T["vision_embeddings"] = vout.hidden_states[0]
                T["vision_hidden_states"] = torch.stack(vout.hidden_states)
                sel = vout.hidden_states[cfg.vision_feature_layer]
                if cfg.vision_feature_select_strategy == "default":
                    sel = sel[:, 1:]
                T["vision_selected_features"] = sel
                T["projector_linear_1_out"] = model.multi_modal_projector.linear_1(sel)
                feats = model.get_image_features(pv, cfg.vision_feature_layer, cfg.vision_feature_select_strategy)
                T["image_features"] = feats
            else:
                image_sizes = inputs["image_sizes"]
                T["image_sizes"] = image_sizes
                kwargs = dict(vision_feature_layer=cfg.vision_feature_layer,
                              vision_feature_select_strategy=cfg.vision_feature_select_strategy)
                feats = model.get_image_features(pv, image_sizes, **kwargs)
                nt = [int(f.shape[0]) for f in feats]
                T["num_tiles"] = torch.tensor(nt, dtype=torch.int64)
                flat = torch.cat([pv[i, :n] for i, n in enumerate(nt)], 0)
                vout = model.vision_tower(flat, output_hidden_states=True)
                T["vision_embeddings"] = vout.hidden_states[0]
                sel = vout.hidden_states[cfg.vision_feature_layer]
                if cfg.vision_feature_select_strategy == "default":
                    sel = sel[:, 1:]
                T["vision_selected_features"] = sel
                T["projector_out"] = torch.cat(list(feats), 0)
                pk = dict(image_newline=model.image_newline)
                if family == "llava_onevision":
                    pk["vision_aspect_ratio"] = cfg.vision_aspect_ratio
                if family == "llava_onevision":
                    packed, lens = model.pack_image_features(list(feats), image_sizes, **pk)
                else:
                    packed, lens = model.pack_image_features(list(feats), image_sizes,
                                                             cfg.vision_feature_select_strategy, **pk)
                T["image_features_packed"] = packed
                T["image_feature_lens"] = lens.to(torch.int64)
                T["image_newline"] = model.image_newline.detach()
        cap = Capture()
        for i, layer in enumerate(lm.model.layers):
            cap.hook(layer, f"text_layer{i}_out")
        cap.hook(lm.model.norm, "text_final_norm_out", first=False)
        holder = {}

        def _pre(m, a):
            if a and "x" not in holder:
                holder["x"] = a[0].detach().clone()
            return None
        ph = lm.model.layers[0].register_forward_pre_hook(_pre)
        t0 = time.time()
        out = model(**fwd, use_cache=False)
        rec["forward_seconds"] = time.time() - t0
        ph.remove()
        cap.remove()
    logits = out.logits[0]
    T["input_ids"] = input_ids
    T["prompt_ids"] = input_ids[0]
    if "x" in holder:  # inputs_embeds (image features scattered in) = input of decoder layer 0
        T["inputs_embeds"] = holder["x"][0]
    for k, v in cap.d.items():
        if not k.startswith("_"):
            T[k] = v[0]
    T["logits"] = logits

    # ---- greedy generation with the KV cache
    t0 = time.time()
    with torch.no_grad():
        g = model.generate(**fwd, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1,
                           eos_token_id=stop_ids, pad_token_id=(stop_ids[0]),
                           output_logits=True, return_dict_in_generate=True, use_cache=True,
                           temperature=None, top_p=None, top_k=None)
    rec["generate_seconds"] = time.time() - t0
    seq = g.sequences[0, S:]
    comp = seq.tolist()
    # generate pads finished sequences? (batch 1: it stops) - keep up to and including the first stop
    for j, t in enumerate(comp):
        if t in stop_ids:
            comp = comp[:j + 1]
            break
    step_logits = torch.stack([l[0] for l in g.logits])[:len(comp)].float()
    T["generated_ids"] = torch.tensor(comp, dtype=torch.int64)
    T["generate_step_logits"] = step_logits

    # ---- the same tokens without the KV cache: recompute the whole sequence every step
    # If a generated token is the image token, the full model cannot take the sequence again (it would
    # count one more image placeholder than there are features); then the decoder alone is run on
    # [prompt inputs_embeds (image features scattered in), embed_tokens(generated tokens)].
    nocache = []
    image_token_id = cfg.image_token_index
    rec["nocache_method"] = "full_model_input_ids"
    with torch.no_grad():
        for j in range(len(comp)):
            if image_token_id in comp[:j] and images:
                rec["nocache_method"] = "decoder_on_inputs_embeds (a generated token is the image token)"
                gen_emb = lm.get_input_embeddings()(torch.tensor([comp[:j]], dtype=torch.int64))
                emb = torch.cat([T["inputs_embeds"][None], gen_emb], 1)
                o2 = lm(inputs_embeds=emb, attention_mask=torch.ones(emb.shape[:2], dtype=torch.int64), use_cache=False)
            else:
                ids = torch.cat([input_ids, torch.tensor([comp[:j]], dtype=torch.int64)], 1)
                f2 = dict(fwd)
                f2["input_ids"] = ids
                f2["attention_mask"] = torch.ones_like(ids)
                o2 = model(**f2, use_cache=False)
            nocache.append(o2.logits[0, -1].float())
    nocache = torch.stack(nocache)
    T["nocache_step_logits"] = nocache
    nocache_argmax = nocache.argmax(-1).tolist()
    assert nocache_argmax == comp, ("no-cache greedy differs", nocache_argmax, comp)
    lp = torch.log_softmax(step_logits, -1)
    T["generate_step_logprobs"] = lp
    top = torch.topk(lp, 5, dim=-1)
    T["top5_ids"] = top.indices.to(torch.int64)
    T["top5_logprobs"] = top.values
    chosen = lp[torch.arange(len(comp)), torch.tensor(comp)]
    T["chosen_logprobs"] = chosen
    srt = torch.sort(step_logits, -1, descending=True).values
    margins = (srt[:, 0] - srt[:, 1]).tolist()

    tok = proc.tokenizer
    text = tok.decode(comp, skip_special_tokens=True)
    text_keep = tok.decode(comp, skip_special_tokens=False)
    # raw bytes of the non-special tokens (byte-level BPE)
    byte_dec = {v: k for k, v in tok.byte_encoder.items()}
    special_ids = set(tok.all_special_ids)
    raw = b""
    for t in comp:
        if t in special_ids:
            continue
        raw += bytes(byte_dec[c] for c in tok.convert_ids_to_tokens(t))
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False

    # ---- independent tokenizer check of the expanded prompt
    expanded = tok.decode(input_ids[0].tolist(), skip_special_tokens=False)
    ind = IndependentBPE(os.path.join(proc_dir(proc), "tokenizer.json"))
    if "image_feature_lens" in T:
        per_image = T["image_feature_lens"].tolist()
    elif images:
        per_image = [int(T["image_features"].shape[1])] * len(images)
    else:
        per_image = []
    assert sum(per_image) == int((input_ids[0] == cfg.image_token_index).sum())
    rendered_ids_ind = ind.encode(expanded_prompt_from(rendered, per_image, cfg, tok))
    assert rendered_ids_ind == input_ids[0].tolist(), "independent BPE disagrees"

    rec.update({
        "hf_messages": hf_messages,
        "rendered_prompt": rendered,
        "expanded_prompt": expanded,
        "prompt_ids": input_ids[0].tolist(),
        "prompt_tokens": S,
        "image_token_positions_count": int((input_ids[0] == image_token_id).sum()),
        "completion_ids": comp,
        "completion_tokens": len(comp),
        "completion_text": text,
        "completion_text_keep_special": text_keep,
        "completion_bytes_hex": raw.hex(),
        "completion_bytes_valid_utf8": valid,
        "finish_reason": "stop" if comp[-1] in stop_ids else "length",
        "stop_token_ids": list(stop_ids),
        "max_new_tokens": MAX_NEW,
        "top5": [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                 for ti, tv in zip(T["top5_ids"].tolist(), T["top5_logprobs"].tolist())],
        "chosen_logprobs": chosen.tolist(),
        "generate_step_top1_margin": margins,
        "min_top1_top2_logit_margin": min(margins),
        "logits_last": logits[-1].tolist(),
        "logits_last_argmax": int(logits[-1].argmax()),
        "max_abs_diff_cache_vs_nocache_step_logits": float((step_logits - nocache).abs().max()),
        "max_abs_diff_prefill_last_vs_generate_step0": float((step_logits[0] - logits[-1]).abs().max()),
        "independent_bpe_prompt_ids_match": True,
        "completion_contains_image_token": image_token_id in comp,
    })
    if images:
        pv = T["pixel_values"]
        rec["image_sizes_wh"] = [list(im.size) for im in images]
        rec["pixel_values_shape"] = list(pv.shape)
        rec["pixel_values_sum"] = float(pv.double().sum())
        rec["pixel_values_first8"] = pv.flatten()[:8].tolist()
        rec["pixel_values_sha256_f32le"] = sha256_f32(pv)
        rec["num_image_tokens"] = per_image
        if "image_sizes" in T:
            rec["image_sizes_hw"] = T["image_sizes"].tolist()
    else:
        rec["image_sizes_wh"] = []
        rec["num_image_tokens"] = []
    return rec, T, pngs


def proc_dir(proc):
    return proc._model_dir


def expanded_prompt_from(rendered, runs, cfg, tok):
    # the processor expands each <image> into N copies; rebuild that string for the independent encoder
    img = tok.convert_ids_to_tokens(cfg.image_token_index)
    parts = rendered.split(img)
    assert len(parts) == len(runs) + 1, (len(parts), runs)
    s = parts[0]
    for n, p in zip(runs, parts[1:]):
        s += img * n + p
    return s


def count_image_runs(ids, image_id):
    runs = []
    prev = False
    for t in ids:
        if t == image_id:
            if not prev:
                runs.append(0)
            runs[-1] += 1
            prev = True
        else:
            prev = False
    return runs


def st_bytes(T):
    out = {}
    for k, v in T.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.to(torch.int64) if not v.is_floating_point() else v.to(torch.float32)
    return st_save(out)


def write_case(case_dir, name, messages, rec, T, pngs, gzip_pixels=True, extra_oracle=None):
    os.makedirs(case_dir, exist_ok=True)
    for i, p in enumerate(pngs):
        open(os.path.join(case_dir, f"image{i}.png"), "wb").write(p)
    open(os.path.join(case_dir, "prompt.txt"), "w", encoding="utf-8").write(rec["rendered_prompt"])
    T = dict(T)
    # kept small (< 20 MB in all): these are derivable or early debugging intermediates
    for k in ("vision_embeddings", "vision_hidden_states", "generate_step_logprobs", "text_final_norm_out"):
        T.pop(k, None)
    files = {}
    if "pixel_values" in T and gzip_pixels:
        pv = T.pop("pixel_values")
        raw = st_save({"pixel_values": pv.contiguous().float()})
        with open(os.path.join(case_dir, "pixel_values.safetensors.gz"), "wb") as f:
            f.write(gzip.compress(raw, compresslevel=9, mtime=0))
        files["pixel_values.safetensors.gz"] = ["pixel_values"]
    data = st_bytes(T)
    open(os.path.join(case_dir, "tensors.safetensors"), "wb").write(data)
    files["tensors.safetensors"] = sorted(T.keys())
    oracle = {"case": name, "messages": messages}
    oracle.update(rec)
    if extra_oracle:
        oracle.update(extra_oracle)
    oracle["arrays"] = {k: list(v.shape) for k, v in T.items()}
    if "pixel_values" in files.get("pixel_values.safetensors.gz", []):
        oracle["arrays"]["pixel_values"] = rec["pixel_values_shape"]
    oracle["tensors"] = files
    json.dump(oracle, open(os.path.join(case_dir, "oracle.json"), "w"), indent=1, ensure_ascii=True)
    return oracle


def chat_entry(name, rel_dir, messages, rec, extra=None):
    e = {
        "name": name,
        "dir": rel_dir,
        "messages": messages,
        "request_params": {"max_tokens": MAX_NEW, "temperature": 0, "logprobs": True, "top_logprobs": 5},
        "image_files": [f"{rel_dir}/image{i}.png" for i in range(len(rec["image_sizes_wh"]))],
        "image_sizes_wh": rec["image_sizes_wh"],
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
        },
        "min_top1_top2_logit_margin": rec["min_top1_top2_logit_margin"],
    }
    if extra:
        e.update(extra)
    return e


def versions():
    import PIL, jinja2, sys, platform
    return {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "Pillow": PIL.__version__, "jinja2": jinja2.__version__, "python": platform.python_version()}
