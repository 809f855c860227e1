"""Shared code for the MiniCPM-V 2.6 reference generators.

The reference is the Hub's remote code of openbmb/MiniCPM-V-2_6 (configuration_minicpm, image_processing_minicpmv,
modeling_minicpmv, modeling_navit_siglip, processing_minicpmv, resampler, tokenization_minicpmv_fast), as kept on
GitHub by 404805854/minicpmv2.6-onnx at commit 8490e592 ("fork from hugging face original code"). The model is
`MiniCPMV(MiniCPMVConfig(**config.json))`; its `generate` runs transformers 4.50's Qwen2ForCausalLM. PyTorch 1.13,
float32, eager attention, greedy decoding. Run with
  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 nice -n 19 /usr/bin/python3 tools/references/minicpmv/<script>.py
(tools/references/setup_env.sh builds /tmp/llava-env). The remote files are taken from a git mirror of that
repository (MINICPMV_GIT, default: where the search tool's `fetch` puts it) into MINICPMV_REMOTE_DIR
(default /tmp/minicpmv-remote) as the package `minicpmv_remote`, and checked against the SHA-256 sums below.
standins.py lists the three stand-ins (none changes a computation).
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))  # reflib (after this folder)
import reflib  # noqa: E402  (one torch thread, synthetic images, data URIs, IndependentBPE, versions)
import standins  # noqa: E402
from reflib import data_uri, png_bytes, sha256_f32, synth_image  # noqa: E402,F401
from safetensors.torch import load_file, save as st_save  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(REPO, "test", "fixtures", "golden"))
EXTRA = os.environ.get("GOLDEN_EXTRA", os.path.join(REPO, "test", "fixtures", "golden-extra"))
PUBLIC = os.environ.get("MINICPMV_PUBLIC", "/work/shared/golden/minicpmv")

REMOTE_REPO = "404805854/minicpmv2.6-onnx"
REMOTE_COMMIT = "8490e5923eeebae2ef7163fc7bb39f5b66967272"
REMOTE_FILES = {
    "configuration_minicpm.py": "e07b81b20d94d1535e5f651f6737272c49639e8b2c3417f077d0ba39c18c04ff",
    "image_processing_minicpmv.py": "954f6c515644c8e2cc9acc227b889e1b1324cdbf0e54ba938a693fab2cb82499",
    "modeling_minicpmv.py": "777fbd5f51d3b47852649386eb2a4754de8ed736c969c29cc9a81b03d030e338",
    "modeling_navit_siglip.py": "c71ca316fe7405325b7097364f98f71c317fff8c9f5c8820f30d3362b1ed5bfa",
    "processing_minicpmv.py": "6fcce591845589e7034ba8c757084d951ad3b8542b756491bb81d3479dde247e",
    "resampler.py": "45c4d94fd144c9c0a2ffeb06aa0443d3d4ed4a091e1ad9a8dee5127d2bcd286c",
    "tokenization_minicpmv_fast.py": "4eb76984f6945cfdbfb5b2fece8cb3ebbdac96aea15e28af3eadbdba471f9b55",
}
MINICPMV_GIT = os.environ.get("MINICPMV_GIT", "/work/.mirror/404805854+minicpmv2.6-onnx/repo")
REMOTE_DIR = os.environ.get("MINICPMV_REMOTE_DIR", "/tmp/minicpmv-remote")
IMAGE_TAG = "(<image>./</image>)"

NOTE = ("stop token (if hit) is the last completion id and counted; completion_text = decode(ids, "
        "skip_special_tokens=True); logprobs = log_softmax of raw float32 logits. rendered_prompt = chat template "
        "output with one '(<image>./</image>)' per image (template_messages: each message's parts joined with '\\n', "
        "an image part written as '(<image>./</image>)', as MiniCPMV.chat does); the processor replaces each by the "
        "image's placeholder string (expanded_prompt). Per-request processor options (max_slice_nums, use_image_id) "
        "are in request_params.processor_kwargs where a case sets them.")


def synth_smooth(w, h, seed):
    """reflib.synth_image without its per-pixel noise (gradients + flat shapes + a few 1-pixel lines): the same
    kind of content, but PNGs (and gzip'd pixel values) a fraction of the size."""
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
            img[((x - cx) / rw) ** 2 + ((y - cy) / rh) ** 2 < 1] = col
    img[rng.randint(0, h), :] = rng.randint(0, 256, 3)
    img[:, rng.randint(0, w)] = rng.randint(0, 256, 3)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- the remote code
class _Remote:
    pass


_REMOTE = None


def remote():
    """The seven remote-code modules, imported from REMOTE_DIR/minicpmv_remote (written from the git mirror)."""
    global _REMOTE
    if _REMOTE is not None:
        return _REMOTE
    pkg = os.path.join(REMOTE_DIR, "minicpmv_remote")
    os.makedirs(pkg, exist_ok=True)
    for name, want in REMOTE_FILES.items():
        path = os.path.join(pkg, name)
        if not os.path.exists(path) or hashlib.sha256(open(path, "rb").read()).hexdigest() != want:
            data = subprocess.run(["git", "--git-dir", MINICPMV_GIT, "show", f"{REMOTE_COMMIT}:{name}"],
                                  check=True, capture_output=True).stdout
            open(path, "wb").write(data)
        got = hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert got == want, f"{name}: sha256 {got} != {want}"
    open(os.path.join(pkg, "__init__.py"), "w").close()
    if REMOTE_DIR not in sys.path:
        sys.path.insert(0, REMOTE_DIR)
    standins.install()
    import importlib
    r = _Remote()
    for name in REMOTE_FILES:
        mod = name[:-3]
        if mod == "tokenization_minicpmv_fast":
            setattr(r, mod, standins.import_tokenizer_module(f"minicpmv_remote.{mod}"))
        else:
            setattr(r, mod, importlib.import_module(f"minicpmv_remote.{mod}"))
    _REMOTE = r
    return r


def read_state_dict(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        sd = {}
        for fn in sorted(set(json.load(open(idx))["weight_map"].values())):
            sd.update(load_file(os.path.join(model_dir, fn)))
        return sd
    return load_file(os.path.join(model_dir, "model.safetensors"))


def load(model_dir):
    """(model, processor): MiniCPMV(MiniCPMVConfig(**config.json)) with the checkpoint's weights upcast to float32
    (strict load), and MiniCPMVProcessor(MiniCPMVImageProcessor.from_pretrained, the tokenizer stand-in)."""
    R = remote()
    config = R.configuration_minicpm.MiniCPMVConfig(**json.load(open(os.path.join(model_dir, "config.json"))))
    torch.manual_seed(0)
    model = R.modeling_minicpmv.MiniCPMV(config)
    sd = read_state_dict(model_dir)
    model.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True)
    model.eval()
    ip = R.image_processing_minicpmv.MiniCPMVImageProcessor.from_pretrained(model_dir)
    tok = R.tokenization_minicpmv_fast.MiniCPMVTokenizerFast.from_pretrained(model_dir)
    proc = R.processing_minicpmv.MiniCPMVProcessor(ip, tok)
    proc._model_dir = model_dir
    # the consistency checks MiniCPMV.chat makes
    assert config.query_num == ip.image_feature_size
    assert config.patch_size == ip.patch_size
    assert config.use_image_id == ip.use_image_id
    assert config.slice_config.max_slice_nums == ip.max_slice_nums
    assert config.slice_mode == ip.slice_mode
    return model, proc


# ---------------------------------------------------------------- messages
def template_messages(messages):
    """OpenAI messages -> what the chat template sees, as MiniCPMV.chat builds them: a list content becomes its
    parts joined with '\\n', an image part written as '(<image>./</image>)'. String content stays as it is; a
    system message is passed to the template as it is (chat() prepends its system_prompt the same way)."""
    out = []
    for m in messages:
        c = m["content"]
        if isinstance(c, str):
            out.append({"role": m["role"], "content": c})
            continue
        parts = []
        for p in c:
            if p["type"] == "image_url":
                parts.append(IMAGE_TAG)
            elif p["type"] == "text":
                parts.append(p["text"])
            else:
                raise ValueError(p["type"])
        out.append({"role": m["role"], "content": "\n".join(parts)})
    return out


def images_of(messages):
    return reflib.images_of(messages)


def render(proc, messages):
    return proc.tokenizer.apply_chat_template(template_messages(messages), tokenize=False, add_generation_prompt=True)


def expand_prompt(proc, rendered, image_sizes, max_slice_nums=None, use_image_id=None):
    """The text processing_minicpmv._convert_images_texts_to_inputs tokenizes (written out again to record it)."""
    ip = proc.image_processor
    chunks = rendered.split(IMAGE_TAG)
    assert len(chunks) == len(image_sizes) + 1
    out = ""
    for i, size in enumerate(image_sizes):
        out += chunks[i] + ip.get_slice_image_placeholder(size, i, max_slice_nums, use_image_id)
    return out + chunks[-1]


def slicing_info(ip, size, max_slice_nums=None):
    """What MiniCPMVImageProcessor.slice_image decides for an image of `size` (W, H)."""
    msn = ip.max_slice_nums if max_slice_nums is None else int(max_slice_nums)
    if not ip.slice_mode:
        return {"image_wh": list(size), "grid_cols_rows": None, "source_wh": list(size), "refine_wh": None,
                "slice_wh": None}
    grid = ip.get_sliced_grid(size, msn)
    if grid is None:
        best = ip.find_best_resize(size, ip.scale_resolution, ip.patch_size, allow_upscale=True)
        return {"image_wh": list(size), "grid_cols_rows": None, "source_wh": list(best), "refine_wh": None,
                "slice_wh": None}
    best = ip.find_best_resize(size, ip.scale_resolution, ip.patch_size)
    refine = ip.get_refine_size(size, grid, ip.scale_resolution, ip.patch_size, allow_upscale=True)
    return {"image_wh": list(size), "grid_cols_rows": list(grid), "source_wh": list(best), "refine_wh": list(refine),
            "slice_wh": [refine[0] // grid[0], refine[1] // grid[1]]}


# ---------------------------------------------------------------- running one case
class Capture:
    def __init__(self):
        self.d = {}
        self.handles = []

    def hook(self, module, name, fn=None):
        def h(mod, inp, out):
            v = fn(inp, out) if fn else (out[0] if isinstance(out, (tuple, list)) else out)
            if hasattr(v, "last_hidden_state"):
                v = v.last_hidden_state
            self.d.setdefault(name, v.detach().clone())
        self.handles.append(module.register_forward_hook(h))

    def remove(self):
        for h in self.handles:
            h.remove()


def positions_from_mask(mask):
    """What GenerationMixin.prepare_inputs_for_generation (4.50) derives from a 2-D attention mask."""
    pos = mask.long().cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)
    return pos


def run_case(model, proc, messages, stop_ids, max_new, max_slice_nums=None, use_image_id=None, attend_all=False):
    """Returns (record, tensors, pngs) for one chat case. The processor's attention mask is input_ids != 0, so a
    prompt token with id 0 ('!') is masked and shifts the positions generate derives from the mask; attend_all=True
    replaces that mask by ones (what the reference would compute if it attended to every token)."""
    tok = proc.tokenizer
    ip = proc.image_processor
    rendered = render(proc, messages)
    pngs = images_of(messages)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    inputs = proc([rendered], [images], max_slice_nums=max_slice_nums, use_image_id=use_image_id, return_tensors="pt")
    image_sizes = inputs.pop("image_sizes")
    input_ids = inputs["input_ids"]
    S = input_ids.shape[1]
    ids = input_ids[0].tolist()
    expanded = expand_prompt(proc, rendered, [im.size for im in images], max_slice_nums, use_image_id)
    assert tok.encode(expanded) == ids, "expanded prompt does not tokenize to input_ids"
    assert tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == expanded
    pv_list = inputs["pixel_values"][0]  # per slice [3, patch, L * patch]
    tgt = inputs["tgt_sizes"][0]
    bound = inputs["image_bound"][0]
    mask = torch.ones_like(inputs["attention_mask"]) if attend_all else inputs["attention_mask"]
    pos = positions_from_mask(mask)
    T = {}
    rec = {"prompt_positions_masked": [i for i, m in enumerate(mask[0].tolist()) if not m]}
    vpm = model.vpm
    lm = model.llm
    data = {"input_ids": input_ids, "pixel_values": inputs["pixel_values"], "tgt_sizes": inputs["tgt_sizes"],
            "image_bound": inputs["image_bound"]}
    with torch.no_grad():
        cap = Capture()
        if images:
            cap.hook(vpm.embeddings, "vision_embeddings")
            cap.hook(vpm.embeddings.position_embedding, "vision_position_ids", lambda inp, out: inp[0])
            for i, l in enumerate(vpm.encoder.layers):
                cap.hook(l, f"vision_layer{i}_out")
            cap.hook(vpm, "vision_features")
            cap.hook(model.resampler, "resampler_out")
        for i, layer in enumerate(lm.model.layers):
            cap.hook(layer, f"text_layer{i}_out")
        emb, _vhs = model.get_vllm_embedding(data)
        out = lm(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=False)
        cap.remove()
    logits = out.logits[0]
    # every other row of inputs_embeds is the plain token embedding (no scale_emb for the Qwen2 config)
    inside = set()
    for s_, e_ in (bound.tolist() if len(bound) else []):
        inside.update(range(s_, e_))
    outside = torch.tensor([j for j in range(S) if j not in inside])
    assert torch.equal(emb[0][outside], lm.model.embed_tokens.weight[input_ids[0][outside].long()])
    T.update(cap.d)
    for k in list(T):
        if k.startswith("text_layer"):
            T[k] = T[k][0]
    T["inputs_embeds"] = emb[0]
    T["prompt_ids"] = input_ids[0].to(torch.int64)
    if rec["prompt_positions_masked"]:
        T["attention_mask"] = mask[0].to(torch.uint8)
        T["position_ids"] = pos[0].to(torch.int64)
    T["logits"] = logits
    if images:
        B = len(pv_list)
        T["tgt_sizes"] = tgt.to(torch.int64)
        T["image_bound"] = bound.to(torch.int64)
        for k, pv in enumerate(pv_list):
            T[f"pixel_values_{k}"] = pv
        T["pixel_values_concat"] = torch.cat(list(pv_list), -1)
        L = (tgt[:, 0] * tgt[:, 1]).tolist()
        maxL = max(L)
        valid = torch.zeros((B, maxL), dtype=torch.uint8)
        for b in range(B):
            valid[b, :L[b]] = 1
        T["vision_patch_valid"] = valid
        pos = T["vision_position_ids"]
        assert pos.shape == (B, maxL) and int(pos[valid == 0].abs().sum()) == 0
        slice_image = []
        for i, im in enumerate(images):
            info = slicing_info(ip, im.size, max_slice_nums)
            g = info["grid_cols_rows"]
            slice_image += [i] * (1 + (g[0] * g[1] if g else 0))
        assert len(slice_image) == B
        T["slice_image_index"] = torch.tensor(slice_image, dtype=torch.int64)
        # image_bound rows hold [start, end): the <unk> runs between <image>/<slice> and </image>/</slice>
        for s, e in bound.tolist():
            assert tok.convert_ids_to_tokens(ids[s - 1]) in ("<image>", "<slice>")
            assert tok.convert_ids_to_tokens(ids[e]) in ("</image>", "</slice>")
            assert all(ids[j] == tok.unk_id for j in range(s, e))
        # the rows of inputs_embeds inside image_bound are the resampler's rows, in order
        R = T["resampler_out"].reshape(-1, T["resampler_out"].shape[-1])
        rows = torch.cat([torch.arange(s, e) for s, e in bound.tolist()])
        assert torch.equal(emb[0][rows], R)
        rec["slicing"] = [slicing_info(ip, im.size, max_slice_nums) for im in images]
        rec["tgt_sizes_hw"] = tgt.tolist()
        rec["image_bound"] = bound.tolist()
        rec["num_slices"] = B
        rec["slice_image_index"] = slice_image
        rec["vision_attention_mask_used"] = bool(min(L) != maxL)
        rec["pixel_values_shapes"] = [list(pv.shape) for pv in pv_list]
        rec["pixel_values_sha256_f32le"] = [sha256_f32(pv) for pv in pv_list]
        rec["image_sizes_wh"] = [[int(x) for x in s] for s in image_sizes[0]]
    else:
        rec["slicing"] = []
        rec["tgt_sizes_hw"] = []
        rec["image_bound"] = bound.tolist() if len(bound) else []
        rec["num_slices"] = 0
        rec["image_sizes_wh"] = []

    # ---- greedy generation with the KV cache, through MiniCPMV.generate (-> Qwen2ForCausalLM.generate)
    with torch.no_grad():
        g = model.generate(input_ids=input_ids, pixel_values=inputs["pixel_values"], tgt_sizes=inputs["tgt_sizes"],
                           image_bound=inputs["image_bound"], attention_mask=mask, tokenizer=tok,
                           max_new_tokens=max_new, do_sample=False, num_beams=1, output_logits=True,
                           return_dict_in_generate=True, temperature=None, top_p=None, top_k=None)
    comp = g.sequences[0].tolist()  # inputs_embeds only: the new tokens
    for j, t in enumerate(comp):
        if t in stop_ids:
            comp = comp[:j + 1]
            break
    step_logits = torch.stack([l[0] for l in g.logits])[:len(comp)].float()
    T["generated_ids"] = torch.tensor(comp, dtype=torch.int64)
    T["generate_step_logits"] = step_logits

    # ---- the same tokens without the KV cache (the whole sequence at every step)
    nocache = []
    with torch.no_grad():
        for j in range(len(comp)):
            e2 = torch.cat([emb, lm.model.embed_tokens(torch.tensor([comp[:j]], dtype=torch.int64))], 1)
            m2 = torch.cat([mask, torch.ones((1, j), dtype=mask.dtype)], 1)
            o2 = lm(inputs_embeds=e2, attention_mask=m2, position_ids=positions_from_mask(m2), use_cache=False)
            nocache.append(o2.logits[0, -1].float())
    nocache = torch.stack(nocache)
    T["nocache_step_logits"] = nocache
    assert nocache.argmax(-1).tolist() == comp, ("no-cache greedy differs", nocache.argmax(-1).tolist(), comp)
    lp = torch.log_softmax(step_logits, -1)
    top = torch.topk(lp, 5, dim=-1)
    T["top5_ids"] = top.indices.to(torch.int64)
    T["top5_logprobs"] = top.values
    chosen = lp[torch.arange(len(comp)), torch.tensor(comp)]
    T["chosen_logprobs"] = chosen
    srt = torch.sort(step_logits, -1, descending=True).values
    margins = (srt[:, 0] - srt[:, 1]).tolist()

    text = tok.decode(comp, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    specials = set(tok.all_special_ids) | {int(k) for k in tok.added_tokens_decoder}
    raw = b""
    for t in comp:
        if t in specials:
            continue
        raw += bytes(tok.byte_decoder[c] for c in tok.convert_ids_to_tokens(t))
    try:
        raw.decode("utf-8")
        valid_utf8 = True
    except UnicodeDecodeError:
        valid_utf8 = False

    ind = reflib.IndependentBPE(os.path.join(proc._model_dir, "tokenizer.json"))
    assert ind.encode(expanded) == ids, "independent BPE disagrees"

    rec.update({
        "rendered_prompt": rendered,
        "expanded_prompt": expanded,
        "prompt_ids": ids,
        "prompt_tokens": S,
        "completion_ids": comp,
        "completion_tokens": len(comp),
        "completion_text": text,
        "completion_text_keep_special": tok.decode(comp, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "completion_tokens_str": tok.convert_ids_to_tokens(comp),
        "completion_bytes_hex": raw.hex(),
        "completion_bytes_valid_utf8": valid_utf8,
        "finish_reason": "stop" if comp[-1] in stop_ids else "length",
        "stop_token_ids": list(stop_ids),
        "max_new_tokens": max_new,
        "top5": [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                 for ti, tv in zip(T["top5_ids"].tolist(), T["top5_logprobs"].tolist())],
        "chosen_logprobs": chosen.tolist(),
        "step_top1_top2_logit_margins": margins,
        "min_top1_top2_logit_margin": min(margins),
        "logits_last": logits[-1].tolist(),
        "logits_last_argmax": int(logits[-1].argmax()),
        "max_abs_diff_cache_vs_nocache_step_logits": float((step_logits - nocache).abs().max()),
        "max_abs_diff_prefill_last_vs_generate_step0": float((step_logits[0] - logits[-1]).abs().max()),
        "independent_bpe_prompt_ids_match": True,
        "text_attn_implementation": lm.config._attn_implementation,
        "vision_attn_implementation": model.config.vision_config._attn_implementation,
    })
    return rec, T, pngs


# what every case keeps; FULL cases keep the rest too (inputs_embeds, every layer output, all logits)
SMALL_KEEP = ("prompt_ids", "attention_mask", "position_ids", "tgt_sizes", "image_bound", "slice_image_index", "vision_patch_valid",
              "vision_position_ids", "vision_features", "resampler_out", "generated_ids", "generate_step_logits",
              "top5_ids", "top5_logprobs", "chosen_logprobs")
DROP_ALWAYS = ("nocache_step_logits", "pixel_values_concat")


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


def write_case(case_dir, name, messages, rec, T, pngs, extra=None, full=False):
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):
        os.remove(os.path.join(case_dir, f))
    for i, p in enumerate(pngs):
        open(os.path.join(case_dir, f"image{i}.png"), "wb").write(p)
    open(os.path.join(case_dir, "prompt.txt"), "w", encoding="utf-8").write(rec["rendered_prompt"])
    open(os.path.join(case_dir, "expanded_prompt.txt"), "w", encoding="utf-8").write(rec["expanded_prompt"])
    T = {k: v for k, v in T.items() if k not in DROP_ALWAYS}
    if not full:
        T = {k: v for k, v in T.items() if k in SMALL_KEEP or k.startswith("pixel_values_")}
        T["logits_last"] = torch.tensor(rec["logits_last"])
    P = {k: v for k, v in T.items() if k.startswith("pixel_values_")}
    T = {k: v for k, v in T.items() if k not in P}
    open(os.path.join(case_dir, "tensors.safetensors"), "wb").write(st_bytes(T))
    if P:  # the processor's output: one [3, patch, L * patch] float32 array per slice, gzip'd
        with open(os.path.join(case_dir, "pixel_values.safetensors.gz"), "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
                gz.write(st_bytes(P))
    oracle = {"case": name, "messages": messages, "template_messages": template_messages(messages)}
    oracle.update(rec)
    if extra:
        oracle.update(extra)
    oracle["arrays"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in T.items()}
    oracle["pixel_values_arrays"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in P.items()}
    json.dump(oracle, open(os.path.join(case_dir, "oracle.json"), "w"), indent=1, ensure_ascii=True)
    return oracle


def chat_entry(name, rel_dir, messages, rec, max_new, processor_kwargs=None, extra=None):
    rp = {"max_tokens": max_new, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    if processor_kwargs:
        rp["processor_kwargs"] = dict(processor_kwargs)
    e = {
        "name": name,
        "dir": rel_dir,
        "messages": messages,
        "template_messages": template_messages(messages),
        "request_params": rp,
        "image_files": [f"{rel_dir}/image{i}.png" for i in range(len(rec["image_sizes_wh"]))],
        "image_sizes_wh": rec["image_sizes_wh"],
        "slicing": rec["slicing"],
        "tgt_sizes_hw": rec["tgt_sizes_hw"],
        "image_bound": rec["image_bound"],
        "rendered_prompt": rec["rendered_prompt"],
        "expanded_prompt": rec["expanded_prompt"],
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


def special_tokens(tok):
    return {str(v.content): int(k) for k, v in sorted(tok.added_tokens_decoder.items())}


def versions():
    v = reflib.versions()
    v["remote_code"] = f"github {REMOTE_REPO} @ {REMOTE_COMMIT[:8]}"
    return v
