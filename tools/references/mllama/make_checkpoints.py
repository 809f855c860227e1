"""Writes the tiny random Mllama checkpoint used by the new cases, in the released layout
(meta-llama/Llama-3.2-11B-Vision-Instruct: BF16 weights in shards + model.safetensors.index.json,
the released tensor names, config.json field names, tokenizer / template / preprocessor files).

  mllama_bf16/model   BF16, two shards (split inside the text decoder), and a second architecture
                      variant so that a port does not hard-code the public checkpoint's shapes:
                      text 5 layers with cross-attention layers [1, 4], 8 heads / 2 KV heads (4 query
                      heads per KV head), vision tile 36 px with 6 px patches (36 patches + class = 37,
                      padded to 40, i.e. 3 padding patches instead of 7), 3 local + 2 global layers,
                      intermediate_layers_indices [0, 2, 3] (index 0 = the layer-0 input) so
                      vision_output_dim = 32 * (1 + 3) = 128.

Everything else (tokenizer.json, vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json,
chat_template.json, generation_config.json) is copied from the public checkpoint (golden/mllama/model).

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
from transformers import MllamaConfig, MllamaForConditionalGeneration  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

PUB = os.path.join(common.PUBLIC, "model")
SEED = 33


def wj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def randomize(model, seed):
    """Weights like the public checkpoint's: linear / conv ~ N(0, 1/fan_in), token embeddings N(0, 1),
    position / tile embeddings N(0, 0.25), norms 1 + N(0, 0.01) (bias N(0, 0.01)), and every tanh gate
    drawn with |gate| in [0.5, 1.2] and a random sign, so that every gated path contributes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("gate") or name.endswith("_gate") or name.endswith("gate_attn") or name.endswith("gate_ffn"):
                mag = 0.5 + 0.7 * torch.rand(p.shape, generator=g)
                sign = torch.where(torch.rand(p.shape, generator=g) < 0.5, -1.0, 1.0)
                p.copy_(mag * sign)
            elif "norm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif "positional_embedding" in name:  # gated position / tile / aspect-ratio embeddings
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("class_embedding"):
                p.copy_(0.08 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = int(torch.tensor(p.shape[1:]).prod())
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:  # linear biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def mllama_bf16(out_root, seed=SEED):
    dst = os.path.join(out_root, "mllama_bf16", "model")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for f in ["chat_template.json", "generation_config.json", "merges.txt", "special_tokens_map.json",
              "tokenizer.json", "tokenizer_config.json", "vocab.json"]:
        shutil.copyfile(os.path.join(PUB, f), os.path.join(dst, f))
    config = json.load(open(os.path.join(PUB, "config.json")))
    t = config["text_config"]
    t.update(num_hidden_layers=5, cross_attention_layers=[1, 4], num_attention_heads=8, num_key_value_heads=2,
             torch_dtype="bfloat16")
    v = config["vision_config"]
    v.update(image_size=36, patch_size=6, num_hidden_layers=3, num_global_layers=2,
             intermediate_layers_indices=[0, 2, 3], vision_output_dim=32 * 4, attention_heads=4)
    config["torch_dtype"] = "bfloat16"
    cfg = MllamaConfig.from_dict(copy.deepcopy(config))
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}

    # two shards: vision + projector + embeddings + text layers 0-2, then text layers 3-4, norm, lm_head
    def shard(k):
        if k.startswith("language_model.model.layers."):
            return 0 if int(k.split(".")[3]) <= 2 else 1
        if k.startswith("language_model.model.norm") or k.startswith("language_model.lm_head"):
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
    pre["size"] = {"height": 36, "width": 36}
    wj(os.path.join(dst, "preprocessor_config.json"), pre)
    print("wrote", dst, {k: v for k, v in zip(names, [sum(1 for k in wm if wm[k] == n) for n in names])})


if __name__ == "__main__":
    out = common.EXTRA
    if len(sys.argv) > 2 and sys.argv[1] == "--out":
        out = sys.argv[2]
    mllama_bf16(out)
