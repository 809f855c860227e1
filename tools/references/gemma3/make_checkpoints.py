"""Writes the tiny random Gemma 3 checkpoints (released layout of google/gemma-3-*-it) used by the new cases:

  gemma3_sliding/model   Gemma3ForConditionalGeneration, F32: SigLIP 64 px / patch 4 (16x16 patches, pooled 4x4
                         -> 16 tokens, kernel 4 as released), decoder hidden 48 with head_dim 16 x 4 heads
                         (q_proj out 64 != hidden), 2 KV heads, 6 layers, sliding_window 10,
                         sliding_window_pattern 3 (layers 2 and 5 global), query_pre_attn_scalar 12
                         (!= head_dim), rope_theta 1e6 with linear rope_scaling x8 (global layers),
                         rope_local_base_freq 1e4 (sliding layers)
  gemma3_bf16/model      the public golden/gemma3 config except sliding_window 24 and sliding_window_pattern 2
                         (layers 1 and 3 global), new random weights stored as BF16 in two shards
                         + model.safetensors.index.json

Tokenizer, chat template, processor and generation files: copied from the public golden/gemma3/model (the
released files' layout; a tiny SentencePiece-derived BPE with Gemma 3's special tokens); preprocessor size
follows the vision tower. Usage: make_checkpoints.py [sliding] [bf16]
"""
import copy
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3lib  # noqa: E402
from transformers import Gemma3Config, Gemma3ForConditionalGeneration  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

PUB = os.path.join(g3lib.GOLDEN, "gemma3", "model")
OUT = g3lib.EXTRA
COPY = ["chat_template.json", "generation_config.json", "processor_config.json", "special_tokens_map.json",
        "tokenizer.json", "tokenizer.model", "tokenizer_config.json"]
SEEDS = {"sliding": 31, "bf16": 37}


def wj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def randomize(model, seed):
    """Random weights of a sensible scale: linear weights ~ N(0, 1/fan_in), token embeddings N(0, 0.1^2) (times
    sqrt(hidden) in the model), SigLIP position embeddings N(0, 0.5^2), Gemma (1 + w) RMSNorm weights around 0
    (pre-norms) or 1 (post-norms, as in the public checkpoint), LayerNorm weights around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=g)
            if "vision_tower" in name and ("layer_norm" in name or "post_layernorm" in name):
                p.copy_((1.0 + 0.1 * r) if name.endswith("weight") else 0.1 * r)
            elif "norm" in name:  # Gemma3RMSNorm: scale = 1 + w
                base = 1.0 if ("post_attention_layernorm" in name or "post_feedforward_layernorm" in name) else 0.0
                p.copy_(base + 0.15 * r)
            elif "embed_tokens" in name:
                p.copy_(0.1 * r)
            elif "position_embedding" in name:
                p.copy_(0.5 * r)
            elif name.endswith("mm_input_projection_weight"):  # [vision hidden, text hidden], used as x @ W
                p.copy_(r / p.shape[0] ** 0.5)
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(r / fan_in ** 0.5)
            else:
                p.copy_(0.1 * r)


def common_files(dst, image_size):
    for f in COPY:
        shutil.copyfile(os.path.join(PUB, f), os.path.join(dst, f))
    pre = json.load(open(os.path.join(PUB, "preprocessor_config.json")))
    pre["size"] = {"height": image_size, "width": image_size}
    wj(os.path.join(dst, "preprocessor_config.json"), pre)


def sliding(seed):
    dst = os.path.join(OUT, "gemma3_sliding", "model")
    os.makedirs(dst, exist_ok=True)
    config = json.load(open(os.path.join(PUB, "config.json")))
    config["mm_tokens_per_image"] = 16
    config["text_config"].update({
        "head_dim": 16, "hidden_size": 48, "intermediate_size": 96, "num_attention_heads": 4,
        "num_hidden_layers": 6, "num_key_value_heads": 2, "query_pre_attn_scalar": 12,
        "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000.0, "sliding_window": 10, "sliding_window_pattern": 3,
    })
    config["vision_config"].update({"hidden_size": 32, "image_size": 64, "intermediate_size": 64,
                                    "num_attention_heads": 4, "num_hidden_layers": 2, "patch_size": 4})
    cfg = Gemma3Config.from_dict(copy.deepcopy(config))
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "language_model.lm_head.weight"}
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    wj(os.path.join(dst, "config.json"), config)
    common_files(dst, 64)
    print("wrote", dst, sum(v.numel() for v in sd.values()), "parameters")


def bf16(seed):
    dst = os.path.join(OUT, "gemma3_bf16", "model")
    os.makedirs(dst, exist_ok=True)
    config = json.load(open(os.path.join(PUB, "config.json")))
    # a wider window than the public checkpoint (so that a short chat prompt fits inside it) and every 2nd layer global
    config["text_config"].update({"sliding_window": 24, "sliding_window_pattern": 2})
    cfg = Gemma3Config.from_dict(copy.deepcopy(config))
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
          if k != "language_model.lm_head.weight"}  # tied to embed_tokens (no lm_head in the release)

    # two shards; the split falls inside text layer 1 (after its self-attention weights)
    def rank(k):
        if k.startswith("vision_tower"):
            return (0, k)
        if k.startswith("multi_modal"):
            return (1, k)
        if "embed_tokens" in k:
            return (2, k)
        if ".layers.0." in k:
            return (3, k)
        if ".layers.1." in k:
            return (4 if ("self_attn" in k or "input_layernorm" in k) else 5, k)
        return (6, k)
    order = sorted(sd.keys(), key=rank)
    split = max(i for i, k in enumerate(order) if rank(k)[0] <= 4) + 1
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {}
    for keys, fn in zip([order[:split], order[split:]], names):
        save_file({k: sd[k] for k in keys}, os.path.join(dst, fn), metadata={"format": "pt"})
        for k in keys:
            wm[k] = fn
    total = sum(v.numel() * 2 for v in sd.values())
    wj(os.path.join(dst, "model.safetensors.index.json"), {"metadata": {"total_size": total},
                                                           "weight_map": dict(sorted(wm.items()))})
    config["torch_dtype"] = "bfloat16"
    wj(os.path.join(dst, "config.json"), config)
    common_files(dst, config["vision_config"]["image_size"])
    print("wrote", dst, "split after", order[split - 1])


if __name__ == "__main__":
    for item in sys.argv[1:] or list(SEEDS):
        k, _, v = item.partition("=")
        seed = int(v) if v else SEEDS[k]
        {"sliding": sliding, "bf16": bf16}[k](seed)
