"""Shared code for the Llama 3.2 Vision (Mllama) reference generators.

transformers 4.50.0 `models/mllama`, PyTorch, float32, eager attention, greedy decoding. Run with
  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 nice -n 19 /usr/bin/python3 tools/references/mllama/<script>.py
(tools/references/setup_env.sh builds /tmp/llava-env).

The processor is transformers' own `MllamaProcessor` + `MllamaImageProcessor`; only the tokenizer
is a stand-in (llama3_tokenizer.py: the release's tokenizer.json needs the Rust `tokenizers`).
"""
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
sys.path.append(os.path.dirname(HERE))  # reflib; after this folder (the LLaVA scripts there have the same names)
import reflib  # noqa: E402  (one torch thread, synthetic images, data URIs, IndependentBPE)
from llama3_tokenizer import Llama3ByteBPETokenizer  # noqa: E402
from reflib import decode_data_uri, sha256_f32  # noqa: E402

import transformers  # noqa: E402
from transformers import MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor  # noqa: E402
from transformers.models.mllama import modeling_mllama as MM  # noqa: E402
from transformers.models.mllama.image_processing_mllama import (  # noqa: E402
    get_all_supported_aspect_ratios, get_image_size_fit_to_canvas, get_optimal_tiled_canvas)
from transformers.models.mllama.processing_mllama import get_cross_attention_token_mask  # noqa: E402
from safetensors.torch import save as st_save  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(REPO, "test", "fixtures", "golden"))
EXTRA = os.environ.get("GOLDEN_EXTRA", os.path.join(REPO, "test", "fixtures", "golden-extra"))
PUBLIC = os.environ.get("MLLAMA_PUBLIC", "/work/shared/golden/mllama")
DATE = "26 Jul 2024"
NOTE = ("stop token (if hit) is the last completion_token_id and is counted in completion_tokens; "
        "completion_text = decode(completion_token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False); "
        "logprobs = log_softmax of the raw float32 logits (no temperature / penalties); messages are rendered as "
        "template_messages (image_url parts -> {\"type\": \"image\"}, string content kept as a string) with "
        "request_params.chat_template_kwargs (date_string); the rendered prompt already starts with <|begin_of_text|> "
        "and is tokenized WITHOUT adding another (add_special_tokens=False, as processor.apply_chat_template(tokenize=True) does)")


class IndependentLlama3BPE(reflib.IndependentBPE):
    """reflib's tokenizer.json reader plus the BPE model's `ignore_merges` (a piece that is a vocabulary
    entry as a whole is not merged step by step: with this vocabulary ' is' -> [279] 'Ġis', not [220, 267])."""

    def __init__(self, path):
        super().__init__(path)
        self.ignore_merges = bool(json.load(open(path, encoding="utf-8"))["model"].get("ignore_merges"))

    def _bpe(self, word):
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        return super()._bpe(word)


class MllamaProcessorRef(MllamaProcessor):
    """transformers' MllamaProcessor, unchanged, except that it accepts the pure-Python tokenizer
    (the class check in ProcessorMixin.__init__ asks for PreTrainedTokenizerFast)."""
    tokenizer_class = "PreTrainedTokenizer"


def load(model_dir):
    model = MllamaForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                           attn_implementation="eager")
    model.eval()
    ip = MllamaImageProcessor.from_pretrained(model_dir)
    tok = Llama3ByteBPETokenizer.from_pretrained(model_dir, unk_token=None)
    ct = json.load(open(os.path.join(model_dir, "chat_template.json"), encoding="utf-8"))["chat_template"]
    proc = MllamaProcessorRef(ip, tok, chat_template=ct)
    proc._model_dir = model_dir
    return model, proc


def template_messages(messages):
    """OpenAI messages -> the messages given to the chat template: image_url parts become
    {"type": "image"}, text parts stay, string content stays a string (the template's system block
    does `content|trim`; its image scan iterates string content character by character, harmlessly in Python)."""
    out = []
    for m in messages:
        c = m["content"]
        if isinstance(c, str):
            out.append({"role": m["role"], "content": c})
            continue
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
    return reflib.images_of(messages)


def render(proc, messages, ctk):
    """The rendered prompt: the tokenizer's apply_chat_template with the processor's template and the
    chat_template_kwargs (processor.apply_chat_template in 4.50 does not pass date_string on, see MLLAMA.md)."""
    return proc.tokenizer.apply_chat_template(template_messages(messages), chat_template=proc.chat_template,
                                              add_generation_prompt=True, tokenize=False, **(ctk or {}))


def tiling_info(proc, pil_images):
    ip = proc.image_processor
    tile = ip.size["height"]
    ars = get_all_supported_aspect_ratios(ip.max_image_tiles)
    info = []
    for im in pil_images:
        w, h = im.size
        ch, cw = (int(x) for x in get_optimal_tiled_canvas(h, w, ip.max_image_tiles, tile))
        nh, nw = get_image_size_fit_to_canvas(h, w, ch, cw, tile)
        info.append({"image_wh": [w, h], "canvas_hw": [ch, cw], "tiles_hw": [ch // tile, cw // tile],
                     "resized_hw": [int(nh), int(nw)], "resized": [int(nh), int(nw)] != [h, w],
                     "aspect_ratio_id": ars.index((ch // tile, cw // tile)) + 1})
    return info


class Capture:
    def __init__(self):
        self.d = {}
        self.handles = []

    def hook(self, module, name, first=True):
        def fn(mod, inp, out):
            if hasattr(out, "last_hidden_state"):
                o = out[0]
            else:
                o = out[0] if (first and isinstance(out, (tuple, list))) else out
            self.d.setdefault(name, o.detach().clone())
        self.handles.append(module.register_forward_hook(fn))

    def remove(self):
        for h in self.handles:
            h.remove()


def run_case(model, proc, messages, stop_ids, max_new, ctk=None):
    """Returns (record, tensors, pngs) for one chat case."""
    cfg = model.config
    tcfg = cfg.text_config
    rendered = render(proc, messages, ctk)
    pngs = images_of(messages)
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    inputs = proc(text=rendered, images=images if images else None, add_special_tokens=False, return_tensors="pt")
    input_ids = inputs["input_ids"]
    S = input_ids.shape[1]
    fwd = {k: v for k, v in inputs.items()}
    T = {}
    rec = {}
    vm = model.vision_model
    lm = model.language_model
    image_id = cfg.image_token_index

    with torch.no_grad():
        cap = Capture()
        if images:
            T["pixel_values"] = inputs["pixel_values"]
            T["aspect_ratio_ids"] = inputs["aspect_ratio_ids"]
            T["aspect_ratio_mask"] = inputs["aspect_ratio_mask"]
            T["cross_attention_mask"] = inputs["cross_attention_mask"]
            cap.hook(vm.patch_embedding, "vision_patch_embeds", first=False)
            cap.hook(vm.layernorm_pre, "vision_after_layernorm_pre", first=False)
            for i, l in enumerate(vm.transformer.layers):
                cap.hook(l, f"vision_local_layer{i}_out")
            cap.hook(vm.layernorm_post, "vision_after_layernorm_post", first=False)
            for i, l in enumerate(vm.global_transformer.layers):
                cap.hook(l, f"vision_global_layer{i}_out")
            cap.hook(vm, "vision_output")
            cap.hook(model.multi_modal_projector, "projector_out", first=False)
        for i, layer in enumerate(lm.model.layers):
            cap.hook(layer, f"text_layer{i}_out")
            if i in tcfg.cross_attention_layers:
                cap.hook(layer.cross_attn, f"text_layer{i}_cross_attn_out")
        cap.hook(lm.model.norm, "text_final_norm_out", first=False)
        cap.hook(lm.model.embed_tokens, "inputs_embeds", first=False)
        ran = []
        pre = [l.register_forward_pre_hook(lambda m, a, i=i: ran.append(i)) for i, l in enumerate(lm.model.layers)]
        out = model(**fwd, use_cache=False)
        for h in pre:
            h.remove()
        cap.remove()
    rec["text_layers_run"] = ran
    logits = out.logits[0]
    T.update({k: v for k, v in cap.d.items()})
    for k in list(T):
        if k.startswith("text_layer") or k in ("text_final_norm_out", "inputs_embeds"):
            T[k] = T[k][0]
    T["input_ids"] = input_ids
    T["prompt_ids"] = input_ids[0]
    T["logits"] = logits

    # masks as the model builds them (same functions the forward calls)
    if images:
        nt = [int(x) for x in (inputs["aspect_ratio_mask"][0].sum(-1)).tolist()]
        T["num_tiles"] = torch.tensor(nt, dtype=torch.int64)
        cam, ftr = MM._prepare_cross_attention_mask(inputs["cross_attention_mask"], num_vision_tokens=vm.num_patches,
                                                    dtype=torch.float32)
        T["full_text_row_masked_out_mask"] = ftr[0, 0, :, 0]
        T["text_cross_attention_allowed"] = (cam[0, 0] == 0).to(torch.uint8)
        L = T["vision_after_layernorm_post"].shape[1] // cfg.vision_config.max_num_tiles
        B_img = inputs["aspect_ratio_mask"].shape[1]
        vmask = MM._prepare_aspect_ratio_attention_mask(inputs["aspect_ratio_mask"].reshape(B_img, -1),
                                                        num_patches=vm.num_patches, target_length=L, dtype=torch.float32)
        T["vision_attention_allowed"] = (vmask[:, 0] == 0).to(torch.uint8)
        rec["num_tiles"] = nt
        rec["aspect_ratio_ids"] = inputs["aspect_ratio_ids"][0].tolist()
        rec["aspect_ratio_mask"] = inputs["aspect_ratio_mask"][0].tolist()
        rec["image_token_positions"] = [i for i, t in enumerate(input_ids[0].tolist()) if t == image_id]
        rec["cross_attention_token_ranges"] = get_cross_attention_token_mask(input_ids[0].tolist(), image_id)
        # per text position: which images it may attend to (from cross_attention_mask, tile 0)
        cm = inputs["cross_attention_mask"][0]
        rec["cross_attention_images_per_token"] = [[j for j in range(cm.shape[1]) if cm[i, j].any()] for i in range(S)]
        rec["vision_tokens_per_tile"] = vm.num_patches
        rec["vision_padded_tokens_per_tile"] = L
        rec["tiling"] = tiling_info(proc, images)
        assert [t["aspect_ratio_id"] for t in rec["tiling"]] == rec["aspect_ratio_ids"]
        assert [t["tiles_hw"][0] * t["tiles_hw"][1] for t in rec["tiling"]] == nt
        rows0 = [i for i in range(S) if T["full_text_row_masked_out_mask"][i] == 0]
        rec["rows_without_image"] = rows0
        for li in tcfg.cross_attention_layers:
            ca = T["text_layer%d_cross_attn_out" % li]  # [S, hidden]: o_proj output, before the tanh gate
            rec["rows_without_image_cross_attn_out_max_abs_layer%d" % li] = float(ca[rows0].abs().max()) if rows0 else None

    # ---- greedy generation with the KV cache
    with torch.no_grad():
        g = model.generate(**fwd, max_new_tokens=max_new, do_sample=False, num_beams=1, eos_token_id=stop_ids,
                           pad_token_id=tcfg.pad_token_id, output_logits=True, return_dict_in_generate=True,
                           use_cache=True, temperature=None, top_p=None, top_k=None)
    comp = g.sequences[0, S:].tolist()
    for j, t in enumerate(comp):
        if t in stop_ids:
            comp = comp[:j + 1]
            break
    step_logits = torch.stack([l[0] for l in g.logits])[:len(comp)].float()
    T["generated_ids"] = torch.tensor(comp, dtype=torch.int64)
    T["generate_step_logits"] = step_logits

    # ---- the same tokens without the KV cache: the whole sequence at every step, the cross-attention
    # mask extended by repeating its last row (as generate's _update_model_kwargs_for_generation does)
    nocache = []
    with torch.no_grad():
        for j in range(len(comp)):
            ids = torch.cat([input_ids, torch.tensor([comp[:j]], dtype=torch.int64)], 1)
            f2 = dict(fwd)
            f2["input_ids"] = ids
            f2["attention_mask"] = torch.ones_like(ids)
            if "cross_attention_mask" in fwd:
                cm = fwd["cross_attention_mask"]
                f2["cross_attention_mask"] = torch.cat([cm] + [cm[:, -1:]] * j, 1)
            o2 = model(**f2, use_cache=False)
            nocache.append(o2.logits[0, -1].float())
    nocache = torch.stack(nocache)
    T["nocache_step_logits"] = nocache
    assert nocache.argmax(-1).tolist() == comp, ("no-cache greedy differs", nocache.argmax(-1).tolist(), comp)
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
    text = tok.decode(comp, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    raw = b""
    specials = set(tok._special_added_ids)
    for t in comp:
        if t in specials:
            continue
        raw += bytes(tok.byte_decoder[c] for c in tok.convert_ids_to_tokens(t))
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False

    # independent tokenizer check (reads tokenizer.json, not transformers' code); add_special_tokens=False
    ind = IndependentLlama3BPE(os.path.join(proc._model_dir, "tokenizer.json"))
    ind.bos = None
    assert ind.encode(rendered) == input_ids[0].tolist(), "independent BPE disagrees"

    rec.update({
        "rendered_prompt": rendered,
        "prompt_ids": input_ids[0].tolist(),
        "prompt_tokens": S,
        "completion_ids": comp,
        "completion_tokens": len(comp),
        "completion_text": text,
        "completion_text_clean_up_tokenization_spaces": tok.decode(comp, skip_special_tokens=True,
                                                                    clean_up_tokenization_spaces=True),
        "completion_text_keep_special": tok.decode(comp, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "completion_tokens_str": tok.convert_ids_to_tokens(comp),
        "completion_bytes_hex": raw.hex(),
        "completion_bytes_valid_utf8": valid,
        "finish_reason": "stop" if comp[-1] in stop_ids else "length",
        "stop_token_ids": list(stop_ids),
        "max_new_tokens": max_new,
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
    })
    if images:
        pv = T["pixel_values"]
        rec["image_sizes_wh"] = [list(im.size) for im in images]
        rec["pixel_values_shape"] = list(pv.shape)
        rec["pixel_values_sum"] = float(pv.double().sum())
        rec["pixel_values_sha256_f32le"] = sha256_f32(pv)
    else:
        rec["image_sizes_wh"] = []
        rec["num_tiles"] = []
    return rec, T, pngs


DROP = ("generate_step_logprobs", "text_final_norm_out", "nocache_step_logits")
VISION_INTERMEDIATES = ("vision_patch_embeds", "vision_after_layernorm_pre", "vision_after_layernorm_post")


def write_case(case_dir, name, messages, rec, T, pngs, extra=None, full_intermediates=True):
    """full_intermediates=False leaves out the vision tower's per-layer outputs (kept: pixel_values, the
    masks, vision_output, projector_out, the text layers, logits) to keep the fixtures small."""
    if not full_intermediates:
        T = {k: v for k, v in T.items() if not (k in VISION_INTERMEDIATES or k.startswith("vision_local_layer")
                                                 or k.startswith("vision_global_layer"))}
    return _write_case(case_dir, name, messages, rec, T, pngs, extra)


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


def _write_case(case_dir, name, messages, rec, T, pngs, extra=None):
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):
        os.remove(os.path.join(case_dir, f))
    for i, p in enumerate(pngs):
        open(os.path.join(case_dir, f"image{i}.png"), "wb").write(p)
    open(os.path.join(case_dir, "prompt.txt"), "w", encoding="utf-8").write(rec["rendered_prompt"])
    T = {k: v for k, v in T.items() if k not in DROP}
    open(os.path.join(case_dir, "tensors.safetensors"), "wb").write(st_bytes(T))
    oracle = {"case": name, "messages": messages, "template_messages": template_messages(messages)}
    oracle.update(rec)
    if extra:
        oracle.update(extra)
    oracle["arrays"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in T.items()}
    json.dump(oracle, open(os.path.join(case_dir, "oracle.json"), "w"), indent=1, ensure_ascii=True)
    return oracle


def chat_entry(name, rel_dir, messages, rec, max_new, ctk, extra=None):
    rp = {"max_tokens": max_new, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    if ctk:
        rp["chat_template_kwargs"] = dict(ctk)
    e = {
        "name": name,
        "dir": rel_dir,
        "messages": messages,
        "template_messages": template_messages(messages),
        "request_params": rp,
        "image_files": [f"{rel_dir}/image{i}.png" for i in range(len(rec["image_sizes_wh"]))],
        "image_sizes_wh": rec["image_sizes_wh"],
        "num_tiles": rec["num_tiles"],
        "aspect_ratio_ids": rec.get("aspect_ratio_ids", []),
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


def special_tokens(tok):
    return {str(v.content): int(k) for k, v in sorted(tok.added_tokens_decoder.items())}


def versions():
    return reflib.versions()
