"""Shared code for the DeepSeek-VL2 reference scripts.

The reference is DeepSeek's own code, github deepseek-ai/DeepSeek-VL2 @ ef9f91e2
(`deepseek_vl2/models/`: conversation.py, processing_deepseek_vl_v2.py, modeling_deepseek_vl_v2.py,
modeling_deepseek.py, siglip_vit.py), run unchanged on PyTorch 1.13 (float32, eager) with transformers
4.50.0 from the reference environment (`tools/references/setup_env.sh`). It is not copied into this
repository: `source_dir()` extracts it from a git mirror (DSVL2_GIT, default the `fetch` mirror) into
/tmp/dsvl2-src once.

What the release needs and this environment lacks (see DEEPSEEK_VL2.md, "Environment"):
  * standins/ (on sys.path before the source): `timm` (PatchEmbed, Mlp, AttentionPoolLatent),
    `xformers.ops.memory_efficient_attention`, the three `einops` patterns, `attrdict`;
    verify_standins.py checks them against the real timm 0.9.16 / einops 0.8.0;
  * llama438.py: transformers 4.38.2's LlamaAttention (the MHA layers of the tiny layout);
  * torchvision (ToTensor / Normalize / Compose): the real Debian python3-torchvision 0.14.1;
  * the tokenizer: `DeepseekByteBPETokenizer` below (the release ships a LlamaTokenizerFast
    tokenizer.json, which needs the Rust `tokenizers`).
Generation: the release's `generate` breaks under 4.50, so `greedy()` runs `forward` in a loop with the
legacy tuple cache, as 4.38's greedy search does (prefill with all ids + images, then one id at a time
with position_ids = past length and an all-ones attention mask).
"""
import io
import json
import os
import subprocess
import sys
import unicodedata

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REFS = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(REFS, "..", ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(REPO, "test", "fixtures", "golden"))
EXTRA = os.environ.get("GOLDEN_EXTRA", os.path.join(REPO, "test", "fixtures", "golden-extra"))
PUBLIC = os.environ.get("DSVL2_PUBLIC", "/work/shared/golden/deepseek_vl2")
DSVL2_COMMIT = "ef9f91e2"
DSVL2_GIT = os.environ.get("DSVL2_GIT", "/work/.mirror/deepseek-ai+DeepSeek-VL2/repo")
DSVL2_SRC = os.environ.get("DSVL2_SRC", "/tmp/dsvl2-src")

torch.set_num_threads(1)


def source_dir():
    """The DeepSeek-VL2 source at ef9f91e2 (deepseek_vl2/ package), extracted with git archive."""
    if not os.path.isdir(os.path.join(DSVL2_SRC, "deepseek_vl2", "models")):
        os.makedirs(DSVL2_SRC, exist_ok=True)
        arch = subprocess.run(["git", "--git-dir", DSVL2_GIT, "archive", DSVL2_COMMIT,
                               "deepseek_vl2/__init__.py", "deepseek_vl2/models"],
                              check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", DSVL2_SRC], input=arch, check=True)
    return DSVL2_SRC


sys.path.insert(0, os.path.join(HERE, "standins"))
sys.path.insert(0, source_dir())
if REFS not in sys.path:
    sys.path.append(REFS)
import reflib  # noqa: E402  (synthetic images, data URIs, IndependentBPE, versions)
import llama438  # noqa: E402

llama438.install()
import transformers  # noqa: E402
from transformers import GPT2Tokenizer  # noqa: E402
from safetensors.torch import save as st_save  # noqa: E402

from deepseek_vl2.models import conversation as ds_conversation  # noqa: E402
from deepseek_vl2.models import modeling_deepseek as MD  # noqa: E402
from deepseek_vl2.models import modeling_deepseek_vl_v2 as MV  # noqa: E402
from deepseek_vl2.models import processing_deepseek_vl_v2 as PV  # noqa: E402

IMAGE_TOKEN = "<image>"
BOS_TEXT = "<｜begin▁of▁sentence｜>"
EOS_TEXT = "<｜end▁of▁sentence｜>"


# ---------------------------------------------------------------- tokenizer
class DeepseekByteBPETokenizer(GPT2Tokenizer):
    """Pure-Python equivalent of what the Rust tokenizer does with the release's tokenizer.json:
    added tokens (special, normalized false, no strip) split off first; NFC normalizer; pre-tokenizer
    Sequence[Split(<DeepSeek regex>, Isolated), ByteLevel(add_prefix_space false, use_regex false)];
    BPE (ignore_merges false) by merge rank; post-processor ByteLevel (adds no BOS: the processor adds
    it by id); decode = ByteLevel decoder over the kept tokens, UTF-8 with U+FFFD; skip_special_tokens
    drops every added special token. Reads vocab.json / merges.txt and asserts they agree with
    tokenizer.json. `vocab` is the fast tokenizers' property (get_vocab(), with the added tokens), which
    DeepseekVLV2Processor.__init__ reads."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, merges_file, *args, **kwargs):
        kwargs["add_prefix_space"] = False
        kwargs.setdefault("add_bos_token", False)
        super().__init__(vocab_file, merges_file, *args, **kwargs)
        import regex
        tj = json.load(open(os.path.join(os.path.dirname(vocab_file), "tokenizer.json"), encoding="utf-8"))
        assert tj["normalizer"]["type"] == "NFC", tj["normalizer"]
        pre = tj["pre_tokenizer"]
        split = [p for p in pre["pretokenizers"] if p["type"] == "Split"][0]
        assert split["behavior"] == "Isolated" and not split["invert"]
        bl = [p for p in pre["pretokenizers"] if p["type"] == "ByteLevel"][0]
        assert not bl["add_prefix_space"] and not bl["use_regex"]
        assert not tj["model"].get("ignore_merges", False)
        assert tj["post_processor"]["type"] == "ByteLevel"
        self.pat = regex.compile(split["pattern"]["Regex"])
        vocab = {k: v for k, v in tj["model"]["vocab"].items()}
        assert all(self.encoder.get(k) == v for k, v in vocab.items() if k in self.encoder), "vocab.json differs"
        self._special_added_ids = {a["id"] for a in tj["added_tokens"] if a["special"]}

    @property
    def vocab(self):
        return self.get_vocab()

    def _tokenize(self, text):
        text = unicodedata.normalize("NFC", text)
        out = []
        for piece in self.pat.findall(text):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            out.extend(self.bpe(mapped).split(" "))
        return out

    def _decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        raw = b""
        for i in token_ids:
            i = int(i)
            if i in self._added_tokens_decoder:
                if skip_special_tokens and i in self._special_added_ids:
                    continue
                raw += self._added_tokens_decoder[i].content.encode("utf-8")
                continue
            raw += bytes(self.byte_decoder[c] for c in self.decoder[i])
        return raw.decode("utf-8", errors="replace")

    def token_bytes(self, ids):
        raw = b""
        for i in ids:
            if i in self._special_added_ids:
                continue
            if i in self._added_tokens_decoder:
                raw += self._added_tokens_decoder[i].content.encode("utf-8")
            else:
                raw += bytes(self.byte_decoder[c] for c in self.decoder[i])
        return raw


class DeepseekVLV2ProcessorRef(PV.DeepseekVLV2Processor):
    """DeepSeek's processor, unchanged, except that ProcessorMixin's class check accepts the pure-Python
    tokenizer."""
    tokenizer_class = "PreTrainedTokenizer"


PROC_KEYS = ("candidate_resolutions", "patch_size", "downsample_ratio", "image_mean", "image_std", "normalize",
             "image_token", "pad_token", "add_special_token", "sft_format", "mask_prompt", "ignore_id")


def load_processor(model_dir):
    tok = DeepseekByteBPETokenizer.from_pretrained(model_dir)
    pc = json.load(open(os.path.join(model_dir, "processor_config.json"), encoding="utf-8"))
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()):  # the processor prints what it adds
        proc = DeepseekVLV2ProcessorRef(tok, **{k: pc[k] for k in PROC_KEYS if k in pc})
    proc._model_dir = model_dir
    return proc


def load_model(model_dir):
    model, info = MV.DeepseekVLV2ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                             attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, bad
    model.eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return model


# ---------------------------------------------------------------- OpenAI messages -> prompt
def openai_to_conversation(messages):
    """OpenAI chat messages -> (system_message, [(role, content)]) the way SGLang's generate_chat_conv
    does it for the `deepseek-vl2` template (python/sglang/srt/conversation.py; the model is in
    _MODELS_REQUIRING_MODALITY_SUPPLEMENT): a system message sets the system message; in a user message
    with parts the text parts are concatenated as they are (no separator) and the images are NOT put
    where they stand: "<image>" once per image_url part is put in front, each followed by "\\n"
    ("\\n".join(["<image>"] * n + [text])); string content is kept as it is; assistant content likewise."""
    system = ""
    turns = []
    for m in messages:
        c = m["content"]
        if m["role"] == "system":
            system = c if isinstance(c, str) else "".join(p["text"] for p in c)
        elif m["role"] == "user":
            if isinstance(c, str):
                turns.append(("<|User|>", c))
            else:
                text = "".join(p["text"] for p in c if p["type"] == "text")
                n = sum(1 for p in c if p["type"] == "image_url")
                turns.append(("<|User|>", "\n".join([IMAGE_TOKEN] * n + [text]) if n else text))
        elif m["role"] == "assistant":
            turns.append(("<|Assistant|>", c if isinstance(c, str) else "".join(p["text"] for p in c)))
        else:
            raise ValueError(m["role"])
    return system, turns


def render_sft(messages):
    """The prompt text of conversation.py's "deepseek" template (SeparatorStyle.DeepSeek; the same text as
    SGLang's deepseek-vl2 template): [system + "\\n\\n"] then per turn role + ": " + content + sep
    (sep "\\n\\n" after a user turn, "<｜end▁of▁sentence｜>" after an assistant turn), and the open
    assistant turn "<|Assistant|>:"."""
    system, turns = openai_to_conversation(messages)
    conv = ds_conversation.get_conv_template("deepseek")
    conv.set_system_message(system)
    for role, content in turns:
        conv.append_message(role, content)
    conv.append_message(conv.roles[1], "")
    return conv.get_prompt()


def ds_conversations(messages):
    """The same chat as DeepSeek's own `conversations` input (role names as in inference.py)."""
    system, turns = openai_to_conversation(messages)
    out = [{"role": "system", "content": system}] if system else []
    out += [{"role": r, "content": c} for r, c in turns]
    out.append({"role": "<|Assistant|>", "content": ""})
    return out


def pil_images(messages):
    return [Image.open(io.BytesIO(p)).convert("RGB") for p in reflib.images_of(messages)]


# ---------------------------------------------------------------- running the model
class Capture:
    def __init__(self):
        self.d = {}
        self.handles = []

    def hook(self, module, name, pick=None):
        def fn(mod, inp, out):
            o = pick(out) if pick else (out[0] if isinstance(out, (tuple, list)) else out)
            self.d.setdefault(name, o.detach().clone() if torch.is_tensor(o) else o)
        self.handles.append(module.register_forward_hook(fn))

    def remove(self):
        for h in self.handles:
            h.remove()


def moe_layers(model):
    return [i for i, l in enumerate(model.language.model.layers) if isinstance(l.mlp, MD.DeepseekV2MoE)]


def greedy(model, fwd, max_new, stop_ids):
    """4.38-style greedy search with the legacy tuple cache. Returns (ids, step_logits [n, V], past)."""
    ids = []
    logits = []
    with torch.no_grad():
        out = model(**fwd, use_cache=True, return_dict=True)
        past = out.past_key_values
        L = fwd["input_ids"].shape[1]
        step = out.logits[0, -1].float()
        while True:
            nxt = int(step.argmax())
            ids.append(nxt)
            logits.append(step)
            if nxt in stop_ids or len(ids) >= max_new:
                break
            pos = L + len(ids) - 1
            out = model(input_ids=torch.tensor([[nxt]]), attention_mask=torch.ones(1, pos + 1, dtype=torch.long),
                        position_ids=torch.tensor([[pos]]), past_key_values=past, use_cache=True, return_dict=True)
            past = out.past_key_values
            step = out.logits[0, -1].float()
    return ids, torch.stack(logits), past


def process(proc, messages, path="prompt"):
    """Processor inputs for a chat. path "prompt": the rendered prompt text through
    processor(prompt=..., images=...) (tokenize_with_images with bos/eos, the final eos dropped), which
    is what a server does with a rendered template (SGLang's own copy of the processor does the same);
    path "conversations": DeepSeek's format_messages_v2 over ds_conversations()."""
    sft = render_sft(messages)
    imgs = pil_images(messages)
    if path == "prompt":
        prep = proc(prompt=sft, images=imgs, apply_sft_format=False, force_batchify=True, inference_mode=True)
    else:
        prep = proc(conversations=ds_conversations(messages), images=imgs, force_batchify=True, system_prompt="")
    return sft, imgs, prep


def run_case(model, proc, messages, max_new, stop_ids, n_route_tokens=6):
    """Returns (rec, T_model, T_proc, pngs)."""
    sft, imgs, prep = process(proc, messages, "prompt")
    _, _, prep_conv = process(proc, messages, "conversations")
    input_ids = prep.input_ids
    S = input_ids.shape[1]
    fwd = {"input_ids": input_ids, "attention_mask": prep.attention_mask.long(), "images": prep.images,
           "images_seq_mask": prep.images_seq_mask, "images_spatial_crop": prep.images_spatial_crop}
    n_img = len(imgs)
    T = {}
    P = {}
    rec = {}
    lang = model.language
    cap = Capture()
    if n_img:
        cap.hook(model.vision.patch_embed, "vision_patch_embed")
        cap.hook(model.vision, "vision_features")
        cap.hook(model.projector, "projector_out")
    cap.hook(lang.model.embed_tokens, "token_embeds")
    for i, layer in enumerate(lang.model.layers):
        cap.hook(layer, f"text_layer{i}_out")
    cap.hook(lang.model.norm, "text_final_norm_out")
    moe = moe_layers(model)
    for i in moe:
        cap.hook(lang.model.layers[i].mlp.gate, f"moe_layer{i}_gate", pick=lambda o: (o[0].clone(), o[1].clone()))
    with torch.no_grad():
        inputs_embeds = model.prepare_inputs_embeds(**fwd)
        out = model(inputs_embeds=inputs_embeds, attention_mask=fwd["attention_mask"], use_cache=False, return_dict=True)
    cap.remove()
    logits = out.logits[0].float()
    for k, v in cap.d.items():
        if k.startswith("moe_layer"):
            continue
        T[k] = v[0] if k.startswith("text_") else v
    T.pop("token_embeds", None)
    T["inputs_embeds"] = inputs_embeds[0]
    mask = prep.images_seq_mask[0]
    if n_img:
        T["image_embeds"] = inputs_embeds[0][mask]
    T["logits"] = logits
    # routing of every MoE layer: expert ids sorted ascending per token, weights in the same order
    # (topk(sorted=False) leaves the order to the implementation; the weighted sum does not depend on it)
    routing = {}
    for i in moe:
        idx, w = cap.d[f"moe_layer{i}_gate"]
        order = torch.argsort(idx, dim=-1)
        idx_s = torch.gather(idx, 1, order)
        w_s = torch.gather(w, 1, order)
        T[f"moe_layer{i}_topk_idx"] = idx_s.to(torch.int64)
        T[f"moe_layer{i}_topk_weight"] = w_s
        routing[i] = (idx_s, w_s)
    if moe:
        first = moe[0]
        idx_s, w_s = routing[first]
        picks = sorted(set([0, 1, 2, S // 3, S // 2, S - 3, S - 2, S - 1]))[:n_route_tokens + 2]
        rec["first_moe_layer"] = first
        rec["first_moe_layer_routing_sample"] = [
            {"position": p, "token_id": int(input_ids[0, p]), "experts": idx_s[p].tolist(),
             "weights": [round(float(x), 7) for x in w_s[p]]} for p in picks]
        rec["first_moe_layer_distinct_expert_sets"] = len({tuple(r) for r in idx_s.tolist()})
        rec["first_moe_layer_expert_token_counts"] = torch.bincount(idx_s.flatten(),
                                                                    minlength=model.config.language_config.n_routed_experts).tolist()

    # processor outputs
    P["prompt_ids"] = input_ids[0]
    P["images_seq_mask"] = mask.to(torch.uint8)
    if n_img:
        P["pixel_values"] = prep.images[0]
        P["images_spatial_crop"] = prep.images_spatial_crop[0]

    ids, step_logits, _ = greedy(model, fwd, max_new, stop_ids)
    T["generated_ids"] = torch.tensor(ids, dtype=torch.int64)
    T["generate_step_logits"] = step_logits
    # no-cache check: the whole sequence again at every step
    nocache = []
    with torch.no_grad():
        for j in range(len(ids)):
            full = torch.cat([input_ids, torch.tensor([ids[:j]], dtype=torch.int64)], 1)
            f2 = dict(fwd)
            f2["input_ids"] = full
            f2["attention_mask"] = torch.ones_like(full)
            f2["images_seq_mask"] = torch.cat([prep.images_seq_mask, torch.zeros(1, j, dtype=torch.bool)], 1)
            o2 = model(**f2, use_cache=False, return_dict=True)
            nocache.append(o2.logits[0, -1].float())
    nocache = torch.stack(nocache)
    assert nocache.argmax(-1).tolist() == ids, ("no-cache greedy differs", nocache.argmax(-1).tolist(), ids)
    lp = torch.log_softmax(step_logits, -1)
    top = torch.topk(lp, 5, dim=-1)
    T["top5_ids"] = top.indices.to(torch.int64)
    T["top5_logprobs"] = top.values
    chosen = lp[torch.arange(len(ids)), torch.tensor(ids)]
    T["chosen_logprobs"] = chosen
    srt = torch.sort(step_logits, -1, descending=True).values
    margins = (srt[:, 0] - srt[:, 1]).tolist()
    tok = proc.tokenizer
    raw = tok.token_bytes(ids)
    try:
        raw.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    # independent tokenizer check: tokenizer.json read directly, image tokens expanded afterwards
    ind = reflib.IndependentBPE(os.path.join(proc._model_dir, "tokenizer.json"))
    ind.bos = None
    rendered = BOS_TEXT + sft
    enc = ind.encode(rendered)
    num_image_tokens = [image_token_count(proc, w, h) for w, h in prep.images_spatial_crop[0].tolist()] if n_img else []
    assert sum(num_image_tokens) == int(mask.sum())
    exp = []
    k = 0
    for t in enc:
        if t == proc.image_token_id:
            exp += [t] * num_image_tokens[k]
            k += 1
        else:
            exp.append(t)
    assert exp == input_ids[0].tolist(), "independent BPE disagrees"
    rec.update({
        "sft_format": sft,
        "rendered_prompt": rendered,
        "ds_conversation": ds_conversations(messages),
        "prompt_ids": input_ids[0].tolist(),
        "prompt_tokens": S,
        "prompt_ids_conversations_path": prep_conv.input_ids[0].tolist(),
        "prompt_ids_conversations_path_equal": prep_conv.input_ids[0].tolist() == input_ids[0].tolist(),
        "num_image_tokens": num_image_tokens,
        "images_spatial_crop_wh_tiles": prep.images_spatial_crop[0].tolist() if n_img else [],
        "image_sizes_wh": [list(im.size) for im in imgs],
        "completion_ids": ids,
        "completion_tokens": len(ids),
        "completion_text": tok.decode(ids, skip_special_tokens=True),
        "completion_text_keep_special": tok.decode(ids, skip_special_tokens=False),
        "completion_bytes_hex": raw.hex(),
        "completion_bytes_valid_utf8": valid,
        "finish_reason": "stop" if ids[-1] in stop_ids else "length",
        "stop_token_ids": list(stop_ids),
        "max_new_tokens": max_new,
        "top5": [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                 for ti, tv in zip(T["top5_ids"].tolist(), T["top5_logprobs"].tolist())],
        "chosen_logprobs": chosen.tolist(),
        "step_top1_top2_logit_margins": margins,
        "min_top1_top2_logit_margin": min(margins),
        "logits_last": logits[-1].tolist(),
        "max_abs_diff_cache_vs_nocache_step_logits": float((step_logits - nocache).abs().max()),
        "max_abs_diff_prefill_last_vs_generate_step0": float((step_logits[0] - logits[-1]).abs().max()),
        "independent_bpe_prompt_ids_match": True,
    })
    if not rec["prompt_ids_conversations_path_equal"]:
        a, b = rec["prompt_ids"], rec["prompt_ids_conversations_path"]
        rec["conversations_path_first_difference"] = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                                                          min(len(a), len(b)))
    T["nocache_step_logits"] = nocache
    return rec, T, P, reflib.images_of(messages)


def image_token_count(proc, num_width_tiles, num_height_tiles):
    """processing_deepseek_vl_v2.py tokenize_with_images: h = w = ceil((image_size // patch_size) / downsample_ratio);
    global view h * (w + 1), one view separator, local views (num_height_tiles * h) * (num_width_tiles * w + 1)."""
    import math
    h = w = math.ceil((proc.image_size // proc.patch_size) / proc.downsample_ratio)
    return h * (w + 1) + 1 + (num_height_tiles * h) * (num_width_tiles * w + 1)


def st_bytes(T):
    out = {}
    for k, v in T.items():
        v = v.detach().cpu().contiguous()
        if v.dtype in (torch.uint8, torch.bool):
            out[k] = v.to(torch.uint8)
        elif v.is_floating_point():
            out[k] = v.to(torch.float32)
        else:
            out[k] = v.to(torch.int64)
    return st_save(out)


def special_tokens(tok):
    return {str(v.content): int(k) for k, v in sorted(tok.added_tokens_decoder.items())}


def versions():
    v = reflib.versions()
    import torchvision
    v["torchvision"] = torchvision.__version__
    v["deepseek_vl2"] = "github deepseek-ai/DeepSeek-VL2 @ " + DSVL2_COMMIT
    return v
