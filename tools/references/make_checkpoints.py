"""Writes the tiny random checkpoints (released layouts) used by the new cases:

  llava_next_mistral/model   llava-hf/llava-v1.6-mistral-7b-hf layout (MistralForCausalLM decoder)
  llava_next_vicuna/model    llava-hf/llava-v1.6-vicuna-7b-hf layout (LlamaForCausalLM, Vicuna/Llama-2)
  llava_next_llama3/model    llava-hf/llama3-llava-next-8b-hf layout (LlamaForCausalLM, Llama-3)
  llava_bf16/model           llava-hf/llava-1.5-7b-hf layout, BF16, two shards + model.safetensors.index.json

Tokenizer: the tiny byte-level BPE of test/fixtures/golden/llava/model (vocab 0..297 identical), with
the release's special tokens. Chat templates: see README (sources).
"""
import copy
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import reflib  # noqa: E402,F401  (sets threads)
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,  # noqa: E402
                          LlavaNextConfig, LlavaNextForConditionalGeneration, MistralConfig)
from safetensors.torch import save_file  # noqa: E402

OUT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PUB = os.environ.get("GOLDEN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "golden")) + "/llava/model"

# ------------------------------------------------------------------ chat templates (released text)
# llava-hf/llava-v1.6-mistral-7b-hf chat_template.json (current revision: assistant turns end with '</s> ';
# an earlier revision had the typo '<\\s> ').
T_MISTRAL = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
             "{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
             "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{{' [/INST]' }}"
             "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
# llava-hf/llava-v1.6-vicuna-7b-hf chat_template.json (identical to llava-1.5-7b-hf's, as in the public llava case)
T_VICUNA = json.load(open(os.path.join(PUB, "chat_template.json")))["chat_template"]
# llava-hf/llama3-llava-next-8b-hf chat_template.json
T_LLAMA3 = ("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'}}{# Render all images first #}"
            "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}{# Render all text next #}"
            "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] + '<|eot_id|>' }}{% endfor %}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# released image_grid_pinpoints of llava-v1.6 / llama3-llava-next: [[336,672],[672,336],[672,672],[1008,336],[336,1008]]
# scaled by 84/336 for the tiny CLIP tower (image_size 84)
PINPOINTS = [[84, 168], [168, 84], [168, 168], [252, 84], [84, 252]]
VISION = dict(hidden_size=64, image_size=84, intermediate_size=128, model_type="clip_vision_model",
              num_attention_heads=4, num_hidden_layers=3, patch_size=14, projection_dim=32)


def wj(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def randomize(model, seed, std=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name or "layrnorm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif name == "image_newline":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                s = 0.5 if "embed_tokens" in name or "position_embedding" in name else std
                p.copy_(s * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def tokenizer_files(dst, kind, chat_template, processor_class):
    tj = json.load(open(os.path.join(PUB, "tokenizer.json"), encoding="utf-8"))
    vocab = json.load(open(os.path.join(PUB, "vocab.json"), encoding="utf-8"))
    tc = json.load(open(os.path.join(PUB, "tokenizer_config.json"), encoding="utf-8"))
    stm = json.load(open(os.path.join(PUB, "special_tokens_map.json"), encoding="utf-8"))
    shutil.copyfile(os.path.join(PUB, "merges.txt"), os.path.join(dst, "merges.txt"))

    def added(i, c):
        return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}

    if kind == "llama3":
        ren = {"<unk>": "<|begin_of_text|>", "<s>": "<|end_of_text|>", "</s>": "<|eot_id|>"}
        specials = [(0, "<|begin_of_text|>"), (1, "<|end_of_text|>"), (2, "<|eot_id|>"), (298, "<image>"),
                    (299, "<pad>"), (300, "<|start_header_id|>"), (301, "<|end_header_id|>")]
        vocab = {ren.get(k, k): v for k, v in vocab.items()}
        tj["model"]["vocab"] = {ren.get(k, k): v for k, v in tj["model"]["vocab"].items()}
        tj["added_tokens"] = [added(i, c) for i, c in specials]
        pp = tj["post_processor"]
        pp["single"][0]["SpecialToken"]["id"] = "<|begin_of_text|>"
        pp["pair"][0]["SpecialToken"]["id"] = "<|begin_of_text|>"
        pp["pair"][2]["SpecialToken"]["id"] = "<|begin_of_text|>"
        pp["special_tokens"] = {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [0], "tokens": ["<|begin_of_text|>"]}}
        tc["added_tokens_decoder"] = {str(i): {k: v for k, v in added(i, c).items() if k != "id"} for i, c in specials}
        for d in tc["added_tokens_decoder"].values():
            d.pop("id", None)
        tc.update(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<pad>")
        tc["unk_token"] = None  # Llama 3 has no unk token (GPT2Tokenizer would otherwise add <|endoftext|>)
        tc["model_max_length"] = 8192
        stm = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<pad>"}
    else:
        tc["model_max_length"] = 32768 if kind == "mistral" else 4096
    tc["chat_template"] = chat_template
    tc["processor_class"] = processor_class
    tc["add_bos_token"] = True
    # field order of the public file
    wj(os.path.join(dst, "tokenizer.json"), tj)
    with open(os.path.join(dst, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    wj(os.path.join(dst, "tokenizer_config.json"), tc)
    wj(os.path.join(dst, "special_tokens_map.json"), stm)
    wj(os.path.join(dst, "chat_template.json"), {"chat_template": chat_template})


def llava_next(name, kind, seed):
    dst = os.path.join(OUT, name, "model")
    os.makedirs(dst, exist_ok=True)
    if kind == "mistral":
        text = MistralConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                             num_hidden_layers=2, max_position_embeddings=32768, rms_norm_eps=1e-5,
                             rope_theta=1000000.0, sliding_window=None, vocab_size=300, pad_token_id=None)
        text_extra = {"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "architectures": ["MistralForCausalLM"]}
        bos, eos, pad, image, vocab = 1, 2, 299, 298, 300
    elif kind == "vicuna":
        text = LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4,
                           num_hidden_layers=2, max_position_embeddings=4096, rms_norm_eps=1e-5,
                           rope_theta=10000.0, vocab_size=300, pad_token_id=None)
        text_extra = {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"]}
        bos, eos, pad, image, vocab = 1, 2, 299, 298, 300
    else:
        text = LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                           num_hidden_layers=2, max_position_embeddings=8192, rms_norm_eps=1e-5,
                           rope_theta=500000.0, vocab_size=302, bos_token_id=0, eos_token_id=2, pad_token_id=None)
        text_extra = {"_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct", "architectures": ["LlamaForCausalLM"]}
        bos, eos, pad, image, vocab = 0, 2, 299, 298, 302
    cfg = LlavaNextConfig(vision_config=CLIPVisionConfig(**{k: v for k, v in VISION.items() if k != "model_type"}),
                          text_config=text, image_token_index=image, image_grid_pinpoints=PINPOINTS,
                          projector_hidden_act="gelu", vision_feature_layer=-2,
                          vision_feature_select_strategy="default", tie_word_embeddings=False,
                          use_image_newline_parameter=True, image_seq_length=36)
    cfg.pad_token_id = pad
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    full = text.to_dict()
    keep = ["hidden_size", "intermediate_size", "max_position_embeddings", "model_type", "num_attention_heads",
            "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "rope_theta", "vocab_size"]
    if kind == "mistral":
        keep += ["sliding_window"]
    if kind == "llama3":
        keep += ["bos_token_id", "eos_token_id"]
    tcfg = {k: full[k] for k in keep}
    tcfg.update(text_extra)
    tcfg["torch_dtype"] = "float32"
    tcfg = dict(sorted(tcfg.items()))
    config = {
        "architectures": ["LlavaNextForConditionalGeneration"],
        "ignore_index": -100,
        "image_grid_pinpoints": PINPOINTS,
        "image_seq_length": 36,
        "image_token_index": image,
        "model_type": "llava_next",
        "pad_token_id": pad,
        "projector_hidden_act": "gelu",
        "text_config": tcfg,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.50.0",
        "use_image_newline_parameter": True,
        "vision_config": VISION,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "vocab_size": vocab,
    }
    wj(os.path.join(dst, "config.json"), config)
    gen = {"_from_model_config": True, "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad,
           "transformers_version": "4.50.0"}
    if kind == "llama3":
        gen["eos_token_id"] = [2, 1]  # <|eot_id|>, <|end_of_text|>
    wj(os.path.join(dst, "generation_config.json"), gen)
    pre = json.load(open(os.path.join(PUB, "preprocessor_config.json")))
    pre = {
        "aspect_ratio_setting": "anyres",
        "crop_size": {"height": 84, "width": 84},
        "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_pad": True,
        "do_rescale": True, "do_resize": True,
        "image_grid_pinpoints": PINPOINTS,
        "image_mean": pre["image_mean"],
        "image_processor_type": "LlavaNextImageProcessor",
        "image_std": pre["image_std"],
        "processor_class": "LlavaNextProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 84},
    }
    wj(os.path.join(dst, "preprocessor_config.json"), pre)
    wj(os.path.join(dst, "processor_config.json"), {
        "image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": 14,
        "processor_class": "LlavaNextProcessor", "vision_feature_select_strategy": "default"})
    tokenizer_files(dst, kind, {"mistral": T_MISTRAL, "vicuna": T_VICUNA, "llama3": T_LLAMA3}[kind],
                    "LlavaNextProcessor")
    print("wrote", dst)


def llava_bf16(seed):
    dst = os.path.join(OUT, "llava_bf16", "model")
    os.makedirs(dst, exist_ok=True)
    for f in ["chat_template.json", "generation_config.json", "merges.txt", "preprocessor_config.json",
              "processor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
              "vocab.json"]:
        shutil.copyfile(os.path.join(PUB, f), os.path.join(dst, f))
    config = json.load(open(os.path.join(PUB, "config.json")))
    cfg = LlavaConfig.from_dict(copy.deepcopy(config))
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    # two shards; the split falls inside text layer 1 (after its self_attn weights)
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
        return (6, k)  # model.norm, lm_head
    order = sorted(sd.keys(), key=rank)
    split = max(i for i, k in enumerate(order) if rank(k)[0] <= 4) + 1
    shards = [order[:split], order[split:]]
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm = {}
    for keys, fn in zip(shards, names):
        save_file({k: sd[k] for k in keys}, os.path.join(dst, fn), metadata={"format": "pt"})
        for k in keys:
            wm[k] = fn
    total = sum(v.numel() * 2 for v in sd.values())
    wj(os.path.join(dst, "model.safetensors.index.json"), {"metadata": {"total_size": total},
                                                           "weight_map": dict(sorted(wm.items()))})
    config["torch_dtype"] = "bfloat16"
    config["text_config"]["torch_dtype"] = "bfloat16"
    wj(os.path.join(dst, "config.json"), config)
    print("wrote", dst, "split after", order[split - 1])


SEEDS = {"mistral": 22, "vicuna": 12, "llama3": 21, "bf16": 23}

if __name__ == "__main__":
    only = sys.argv[1:] or list(SEEDS)
    for item in only:
        k, _, v = item.partition("=")
        seed = int(v) if v else SEEDS[k]
        if k == "bf16":
            llava_bf16(seed)
        else:
            llava_next("llava_next_" + k, k, seed)
