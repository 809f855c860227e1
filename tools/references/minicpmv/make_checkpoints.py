"""Writes the tiny random MiniCPM-V 2.6 checkpoint used by the BF16 cases, in the released layout
(openbmb/MiniCPM-V-2_6: BF16 weights in shards + model.safetensors.index.json, the released tensor names
llm.* / vpm.* / resampler.*, config.json and preprocessor_config.json field names, the tokenizer files).

  minicpmv_bf16/model   BF16, two shards (the split falls between text layers 1 and 2), and an architecture
                        different from the public checkpoint's so that a port does not hard-code its shapes:
                        text hidden 128 (so the resampler has 128 // 128 = 1 head instead of 2), 3 layers, 4 heads
                        of 32 / 2 KV heads (2 query heads per KV head instead of 4), intermediate 64; vision hidden 48, 3 heads, 3 layers, intermediate 96, image_size 98 (a 7x7
                        position-embedding grid instead of 10x10); query_num 8 (image_feature_size 8);
                        scale_resolution 70 (5 patches) instead of 56. Everything the released config has as an option
                        stays as released: slice_mode true, use_image_id true, max_slice_nums 9, patch 14,
                        drop_vision_last_layer false, tie_word_embeddings false, version 2.6.

Weights are drawn like the public checkpoint's: matrices (and the patch-embedding conv) normal with std
1/sqrt(fan_in), biases std 0.1, norm weights 1 + std 0.1 (norm biases std 0.1), token / position embeddings and
the resampler queries std 1.
tokenizer.json, vocab.json, merges.txt, tokenizer_config.json and generation_config.json are copied from the
public checkpoint (golden/minicpmv/model).

Usage: make_checkpoints.py [--out DIR]   (default test/fixtures/golden-extra)
"""
import copy
import json
import math
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

PUB = os.path.join(common.PUBLIC, "model")
SEED = 61


def wj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name or ".ln_" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("embed_tokens.weight") or name.endswith("position_embedding.weight") \
                    or name == "resampler.query":
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = int(torch.tensor(p.shape[1:]).prod())
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:  # linear / conv / attention biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def minicpmv_bf16(out_root, seed=SEED):
    R = common.remote()
    dst = os.path.join(out_root, "minicpmv_bf16", "model")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for f in ["generation_config.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "vocab.json"]:
        shutil.copyfile(os.path.join(PUB, f), os.path.join(dst, f))
    config = json.load(open(os.path.join(PUB, "config.json")))
    config.update(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64, max_window_layers=3, query_num=8, torch_dtype="bfloat16")
    config["slice_config"] = dict(config["slice_config"], scale_resolution=70)
    config["vision_config"] = dict(config["vision_config"], hidden_size=48, num_attention_heads=3, num_hidden_layers=3,
                                   intermediate_size=96, image_size=98)
    cfg = R.configuration_minicpm.MiniCPMVConfig(**copy.deepcopy(config))
    torch.manual_seed(seed)
    model = R.modeling_minicpmv.MiniCPMV(cfg).eval()
    randomize(model, seed)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}

    # two shards: vision, resampler, embeddings and text layers 0-1; then text layers 2.., norm, lm_head
    def shard(k):
        if k.startswith("llm.model.layers."):
            return 0 if int(k.split(".")[3]) <= 1 else 1
        if k.startswith("llm.model.norm") or k.startswith("llm.lm_head"):
            return 1
        return 0
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {}
    for i, fn in enumerate(names):
        keys = sorted(k for k in sd if shard(k) == i)
        save_file({k: sd[k] for k in keys}, os.path.join(dst, fn), metadata={"format": "pt"})
        for k in keys:
            wm[k] = fn
    total = sum(x.numel() * 2 for x in sd.values())
    wj(os.path.join(dst, "model.safetensors.index.json"), {"metadata": {"total_size": total},
                                                           "weight_map": dict(sorted(wm.items()))})
    wj(os.path.join(dst, "config.json"), config)
    pre = json.load(open(os.path.join(PUB, "preprocessor_config.json")))
    pre.update(scale_resolution=70, image_feature_size=8)
    wj(os.path.join(dst, "preprocessor_config.json"), pre)
    print("wrote", dst, {n: sum(1 for k in wm if wm[k] == n) for n in names})


if __name__ == "__main__":
    out = common.EXTRA
    if len(sys.argv) > 2 and sys.argv[1] == "--out":
        out = sys.argv[2]
    minicpmv_bf16(out)
