"""Writes the two tiny random DeepSeek-VL2 checkpoints used by the new cases, in the released layout
(config.json with language_config / vision_config / projector_config, processor_config.json, the tokenizer
files, model.safetensors or shards + model.safetensors.index.json, the released tensor names).

  deepseek_vl2_small/model   DeepSeek-VL2-small's decoder structure at tiny sizes, float32, one file:
      MLA attention (q_lora_rank 24 -> q_a_proj / q_a_layernorm / q_b_proj; kv_lora_rank 16 ->
      kv_a_proj_with_mqa / kv_a_layernorm / kv_b_proj; qk_nope_head_dim 8, qk_rope_head_dim 8,
      v_head_dim 12, 4 heads), yarn rope scaling (factor 4, original 64, beta 32/1, mscale 1.0,
      mscale_all_dim 0.707: both the cos/sin factor and the softmax-scale factor differ from 1),
      first_k_dense_replace 1 (layer 0 dense, layers 1-2 MoE), 8 routed experts in 4 groups, top-3,
      topk_group 2, topk_method noaux_tc with e_score_correction_bias, scoring_func sigmoid,
      norm_topk_prob true, routed_scaling_factor 2.5, 2 shared experts; vision tile 70 px (5x5 patches of
      14, an odd grid like the release's 27x27, padded to 6x6 by the projector -> 3x3 tokens per tile),
      candidate resolutions = the release's 23 with 384 -> 70.
  deepseek_vl2_bf16/model    the public tiny layout (MHA via LlamaAttention, greedy softmax router, tile
      100) with a second shape (3 decoder layers, 8 heads of 8, first_k_dense_replace 1, 6 routed experts
      top-2, 1 shared expert; 3 vision blocks of 6 heads), stored as BF16 in two shards (split inside
      decoder layer 1).

Weights follow the public checkpoint's statistics (token embeddings, image_newline and view_seperator
N(0, 1); decoder linears N(0, 4/fan_in), lm_head N(0, 1/fan_in); vision / projector linears N(0, 1/fan_in);
pos_embed N(0, 0.25); norms 1 + N(0, 0.01), biases N(0, 0.01)); the router weight is N(0, 9/fan_in) and
e_score_correction_bias uniform in [0, 0.2) so that different tokens pick different experts and the bias
changes some choices (every score + bias stays > 0; see DEEPSEEK_VL2.md for the masked_fill(0.0) detail).

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
import dslib  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

PUB = os.path.join(dslib.PUBLIC, "model")
TOKENIZER_FILES = ["generation_config.json", "merges.txt", "special_tokens_map.json", "tokenizer.json",
                   "tokenizer_config.json", "vocab.json"]
SEEDS = {"deepseek_vl2_small": 51, "deepseek_vl2_bf16": 52}


def wj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            n = lambda: torch.randn(p.shape, generator=g)  # noqa: E731
            if name in ("image_newline", "view_seperator") or name.endswith("embed_tokens.weight"):
                p.copy_(n())
            elif name.endswith("pos_embed") or name.endswith("attn_pool.latent"):
                p.copy_(0.5 * n())
            elif name.endswith("e_score_correction_bias"):
                p.copy_(0.2 * torch.rand(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * n() if name.endswith("weight") else 0.1 * n())
            elif p.dim() >= 2:
                fan_in = int(torch.tensor(p.shape[1:]).prod())
                if name.startswith("language.") and name.endswith("mlp.gate.weight"):
                    scale = 3.0
                elif name.startswith("language.model."):
                    scale = 2.0
                else:
                    scale = 1.0
                p.copy_(scale * n() / math.sqrt(fan_in))
            else:
                p.copy_(0.1 * n())


def build(config, seed):
    cfg = dslib.MV.DeepseekVLV2Config(**copy.deepcopy(config))
    torch.manual_seed(seed)
    model = dslib.MV.DeepseekVLV2ForCausalLM(cfg).eval()
    randomize(model, seed)
    return model


def start(out_root, name):
    dst = os.path.join(out_root, name, "model")
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(PUB, f), os.path.join(dst, f))
    return dst


def small(out_root):
    name = "deepseek_vl2_small"
    dst = start(out_root, name)
    config = json.load(open(os.path.join(PUB, "config.json")))
    tile = 70
    config["candidate_resolutions"] = [[w * tile // 100, h * tile // 100] for w, h in config["candidate_resolutions"]]
    lc = config["language_config"]
    lc.update({
        "first_k_dense_replace": 1, "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 24,
        "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
        "q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 12,
        "use_mla": True, "n_routed_experts": 8, "n_shared_experts": 2, "num_experts_per_tok": 3,
        "n_group": 4, "topk_group": 2, "topk_method": "noaux_tc", "scoring_func": "sigmoid",
        "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.707},
        "torch_dtype": "float32",
    })
    config["language_config"] = dict(sorted(lc.items()))
    config["vision_config"]["image_size"] = tile
    model = build(config, SEEDS[name])
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    wj(os.path.join(dst, "config.json"), config)
    pc = json.load(open(os.path.join(PUB, "processor_config.json")))
    pc["candidate_resolutions"] = config["candidate_resolutions"]
    wj(os.path.join(dst, "processor_config.json"), pc)
    print("wrote", dst, len(sd), "tensors")


def bf16(out_root):
    name = "deepseek_vl2_bf16"
    dst = start(out_root, name)
    config = json.load(open(os.path.join(PUB, "config.json")))
    lc = config["language_config"]
    lc.update({"num_hidden_layers": 3, "first_k_dense_replace": 1, "num_attention_heads": 8, "num_key_value_heads": 8,
               "n_routed_experts": 6, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 24,
               "torch_dtype": "bfloat16"})
    config["vision_config"].update({"layers": 3, "heads": 6})
    config["torch_dtype"] = "bfloat16"
    model = build(config, SEEDS[name])
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}

    def shard(k):  # 1: vision, projector, tile tags, embeddings, layer 0, layer 1's attention; 2: the rest
        if k.startswith("language.model.layers."):
            li = int(k.split(".")[3])
            return 0 if li == 0 or (li == 1 and ".self_attn." in k) else 1
        if k.startswith("language.model.norm") or k.startswith("language.lm_head"):
            return 1
        return 0
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {}
    for i, fn in enumerate(names):
        keys = sorted(k for k in sd if shard(k) == i)
        save_file({k: sd[k] for k in keys}, os.path.join(dst, fn), metadata={"format": "pt"})
        for k in keys:
            wm[k] = fn
    wj(os.path.join(dst, "model.safetensors.index.json"),
       {"metadata": {"total_size": sum(x.numel() * 2 for x in sd.values())}, "weight_map": dict(sorted(wm.items()))})
    wj(os.path.join(dst, "config.json"), config)
    shutil.copyfile(os.path.join(PUB, "processor_config.json"), os.path.join(dst, "processor_config.json"))
    print("wrote", dst, {n: sum(1 for k in wm if wm[k] == n) for n in names})


if __name__ == "__main__":
    out = dslib.EXTRA
    if len(sys.argv) > 2 and sys.argv[1] == "--out":
        out = sys.argv[2]
    small(out)
    bf16(out)
