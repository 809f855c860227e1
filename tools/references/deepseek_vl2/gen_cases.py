"""Computes the new DeepSeek-VL2 chat cases. Usage: gen_cases.py [deepseek_vl2] [deepseek_vl2_small] [deepseek_vl2_bf16]

  deepseek_vl2        cases on the public checkpoint (golden/deepseek_vl2/model: tiny layout, MHA, greedy router)
  deepseek_vl2_small  cases on make_checkpoints.py's MLA + noaux_tc checkpoint (tile 70)
  deepseek_vl2_bf16   cases on make_checkpoints.py's BF16 two-shard checkpoint of the tiny layout
Output: test/fixtures/golden-extra/<family>/{chat_cases.json, cases/<name>/...}; a summary in summary.json here.
"""
import gzip
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dslib  # noqa: E402
from reflib import data_uri, png_bytes, synth_image  # noqa: E402

MAX_NEW = 12
STOP = [1]
NOTE = ("stop token (if hit) is the last completion_token_id and counted; completion_text = "
        "decode(completion_token_ids, skip_special_tokens=True); logprobs = log_softmax of the raw float32 logits. "
        "messages -> prompt: SGLang's deepseek-vl2 conversation (images first as '<image>\\n' each, then the "
        "concatenated text parts; system message + '\\n\\n'; see DEEPSEEK_VL2.md); rendered_prompt = "
        "'<｜begin▁of▁sentence｜>' + sft_format, tokenized with the added tokens split off, each <image> standing for "
        "num_image_tokens[i] copies of id 290 (the processor's prompt path: tokenize_with_images(bos, eos), eos dropped)")
# image i of a case is synth_image(w, h, CASE_SEEDS[family][case] + i); seeds picked so that every case's
# smallest top-1/top-2 logit gap stays far above float32 noise
CASE_SEEDS = {
    "deepseek_vl2": {"small_image_1x1": 901, "wide_4x1": 910, "tall_1x3": 920, "many_tiles_3x3": 930,
                     "two_images": 940, "three_images_no_cropping": 950, "text_only": 0, "multi_turn": 961},
    "deepseek_vl2_small": {"one_image_2x2": 970, "two_images_two_turns": 980, "text_only": 0},
    "deepseek_vl2_bf16": {"one_image_wide_2x1": 990, "text_only_system": 0},
}
SEED_OVERRIDE = json.loads(os.environ.get("DSVL2_SEEDS", "{}"))
# the cases that also keep the vision patch embeddings
FULL = {"wide_4x1", "one_image_2x2"}
_seed = [0]


def img(w, h):
    _seed[0] += 1
    return {"type": "image_url", "image_url": {"url": data_uri(png_bytes(synth_image(w, h, _seed[0])))}}


def txt(t):
    return {"type": "text", "text": t}


def user(*parts):
    return {"role": "user", "content": list(parts)}


def cases_for(fam):
    C = []

    def at(name):
        _seed[0] = SEED_OVERRIDE.get(f"{fam}/{name}", CASE_SEEDS[fam][name])
        return name
    if fam == "deepseek_vl2":
        C.append((at("small_image_1x1"), [user(img(40, 30), txt("Describe this small picture."))],
                  "40x30: every candidate gives the same effective resolution (the image's own 1200 px); the least "
                  "waste wins: (100, 100), one local tile; global view and local tile are both the image padded "
                  "(bicubic up to 100x75, mean-colour bars 12 / 13 px above / below); 20 + 1 + 4*(4+1) = 41 tokens"))
        C.append((at("wide_4x1"), [user(img(320, 70), txt("What is in this wide image?"))],
                  "320x70: best fit (400, 100) -> 4x1 tiles (images_spatial_crop [4, 1]); local view = resize to 400x88 "
                  "then padded to 400x100; 20 + 1 + 4*(16+1) = 89 tokens"))
        C.append((at("tall_1x3"), [user(img(60, 250), txt("What is in this tall image?"))],
                  "60x250: best fit (100, 300) -> 1x3 tiles ([1, 3]); 20 + 1 + 12*(4+1) = 81 tokens"))
        C.append((at("many_tiles_3x3"), [user(img(280, 260), txt("Describe everything."))],
                  "280x260: best fit (300, 300) -> 3x3 = 9 local tiles + the global view (10 tiles through the tower); "
                  "tiles row-major; 20 + 1 + 12*(12+1) = 177 tokens"))
        C.append((at("two_images"), [user(img(150, 100), img(90, 200), txt("Compare these two pictures."))],
                  "two images in one message (2 <= 2: both tiled): 150x100 -> (200, 100) 2x1, 90x200 -> (100, 200) 1x2; "
                  "'<image>\\n<image>\\nCompare...'; 57 + 61 image tokens; the two images' tokens are separated by the "
                  "'\\n' token"))
        C.append((at("three_images_no_cropping"), [user(img(200, 60), img(50, 50), img(70, 140),
                                                        txt("Which of the three is the widest?"))],
                  "three images: tokenize_with_images is called with cropping = len(images) <= 2 = False, so every image "
                  "gets best fit (100, 100) whatever its shape: 1x1 local tile + global view, 41 tokens each; the 200x60 "
                  "image is squeezed into one padded tile"))
        C.append((at("text_only"), [{"role": "system", "content": "You are a terse assistant."},
                                    {"role": "user", "content": "Hello there, how are you?"}],
                  "no image: system message + '\\n\\n' before the first turn; the processor's images are a zero "
                  "placeholder and images_spatial_crop is [[0, 0]], so the model skips the vision tower. DeepSeek's "
                  "conversations path gives different ids here (see prompt_ids_conversations_path)"))
        C.append((at("multi_turn"), [user(img(120, 80), txt("What is this?")),
                                     {"role": "assistant", "content": "A small picture."},
                                     user(txt("Describe it in more detail."))],
                  "image in the first user turn (120x80 -> (200, 100) 2x1), an assistant reply closed by "
                  "'<｜end▁of▁sentence｜>' (id 1) in the prompt, a second question; prompt path "
                  "'<|Assistant|>: A small picture.<｜end▁of▁sentence｜><|User|>: ...'"))
    elif fam == "deepseek_vl2_small":
        C.append((at("one_image_2x2"), [user(img(130, 120), txt("What is in this image?"))],
                  "MLA + noaux_tc checkpoint, tile 70 (5x5 patches, projector pads to 6x6 -> 3x3 tokens): 130x120 -> "
                  "(140, 140) 2x2 tiles; 3*(3+1) + 1 + 6*(6+1) = 55 image tokens"))
        C.append((at("two_images_two_turns"), [user(img(60, 40), txt("What is this?")),
                                               {"role": "assistant", "content": "A picture."},
                                               user(img(50, 150), txt("And this one?"))],
                  "an image in each of two user turns (2 images in the chat: both tiled): 60x40 -> (70, 70) 1x1, "
                  "50x150 -> (70, 210) 1x3"))
        C.append((at("text_only"), [{"role": "user", "content": "Write one short sentence."}],
                  "no image, no system message: BOS, '<|User|>: ...\\n\\n<|Assistant|>:'"))
    elif fam == "deepseek_vl2_bf16":
        C.append((at("one_image_wide_2x1"), [user(img(200, 90), txt("What is in this image?"))],
                  "the BF16 two-shard checkpoint (upcast to float32 on load): 200x90 -> (200, 100) 2x1"))
        C.append((at("text_only_system"), [{"role": "system", "content": "Answer briefly."},
                                           {"role": "user", "content": "Name a color."}],
                  "system message + user string"))
    return C


DROP = ("generate_step_logprobs", "nocache_step_logits")


def write_case(case_dir, name, messages, rec, T, P, pngs, extra):
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):
        os.remove(os.path.join(case_dir, f))
    for i, p in enumerate(pngs):
        open(os.path.join(case_dir, f"image{i}.png"), "wb").write(p)
    open(os.path.join(case_dir, "prompt.txt"), "w", encoding="utf-8").write(rec["rendered_prompt"])
    T = {k: v for k, v in T.items() if k not in DROP}
    if name not in FULL:
        T.pop("vision_patch_embed", None)
    T["logits_last"] = T.pop("logits")[-1]
    open(os.path.join(case_dir, "tensors.safetensors"), "wb").write(dslib.st_bytes(T))
    with gzip.GzipFile(os.path.join(case_dir, "processor.safetensors.gz"), "wb", mtime=0) as f:
        f.write(dslib.st_bytes(P))
    oracle = {"case": name, "messages": "see chat_cases.json (the data URIs are the image{i}.png files)"}
    oracle.update(rec)
    oracle.update(extra)
    oracle["arrays"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in T.items()}
    oracle["processor_arrays"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in P.items()}
    json.dump(oracle, open(os.path.join(case_dir, "oracle.json"), "w"), indent=1, ensure_ascii=True)


def chat_entry(name, rel_dir, messages, rec, extra):
    e = {
        "name": name,
        "dir": rel_dir,
        "messages": messages,
        "request_params": {"max_tokens": MAX_NEW, "temperature": 0, "logprobs": True, "top_logprobs": 5},
        "image_files": [f"{rel_dir}/image{i}.png" for i in range(len(rec["image_sizes_wh"]))],
        "image_sizes_wh": rec["image_sizes_wh"],
        "num_image_tokens": rec["num_image_tokens"],
        "images_spatial_crop_wh_tiles": rec["images_spatial_crop_wh_tiles"],
        "rendered_prompt": rec["rendered_prompt"],
        "sft_format": rec["sft_format"],
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
    e.update(extra)
    return e


def main(fams):
    spec = {
        "deepseek_vl2": (os.path.join(dslib.GOLDEN, "deepseek_vl2", "model"), "../../golden/deepseek_vl2/model"),
        "deepseek_vl2_small": (os.path.join(dslib.EXTRA, "deepseek_vl2_small", "model"), "model"),
        "deepseek_vl2_bf16": (os.path.join(dslib.EXTRA, "deepseek_vl2_bf16", "model"), "model"),
    }
    sp = os.path.join(dslib.HERE, "summary.json")
    summary = json.load(open(sp)) if os.path.exists(sp) else {}
    for fam in fams:
        mdir, rel = spec[fam]
        proc = dslib.load_processor(mdir)
        model = dslib.load_model(mdir)
        extra_fam = {}
        if fam == "deepseek_vl2_bf16":  # every float32 parameter equals its BF16 value upcast
            from safetensors.torch import load_file
            sd = {}
            for fn in sorted(set(json.load(open(os.path.join(mdir, "model.safetensors.index.json")))["weight_map"].values())):
                sd.update(load_file(os.path.join(mdir, fn)))
            msd = model.state_dict()
            assert set(sd) == set(msd), set(sd) ^ set(msd)
            assert all(v.dtype == torch.bfloat16 for v in sd.values())
            assert all(torch.equal(msd[k], v.float()) for k, v in sd.items()), "upcast mismatch"
            extra_fam["bf16_upcast_checked"] = True
        fam_dir = os.path.join(dslib.EXTRA, fam)
        entries = []
        for name, messages, covers in cases_for(fam):
            rec, T, P, pngs = dslib.run_case(model, proc, messages, MAX_NEW, STOP)
            ex = {"covers": covers, "image_seed_base": _seed_base(fam, name)}
            write_case(os.path.join(fam_dir, "cases", name), name, messages, rec, T, P, pngs, ex)
            ce = {"covers": covers}
            for k in ("first_moe_layer", "first_moe_layer_routing_sample"):
                if k in rec:
                    ce[k] = rec[k]
            entries.append(chat_entry(name, f"cases/{name}", messages, rec, ce))
            summary[f"{fam}/{name}"] = {
                "prompt_tokens": rec["prompt_tokens"], "image_sizes_wh": rec["image_sizes_wh"],
                "tiles_wh": rec["images_spatial_crop_wh_tiles"], "num_image_tokens": rec["num_image_tokens"],
                "completion_ids": rec["completion_ids"], "finish": rec["finish_reason"],
                "min_margin": round(rec["min_top1_top2_logit_margin"], 5),
                "cache_vs_nocache": rec["max_abs_diff_cache_vs_nocache_step_logits"],
                "conversations_path_equal": rec["prompt_ids_conversations_path_equal"],
                "first_moe_distinct_sets": rec.get("first_moe_layer_distinct_expert_sets"),
                "first_moe_counts": rec.get("first_moe_layer_expert_token_counts"),
            }
            print(fam, name, json.dumps(summary[f"{fam}/{name}"]), flush=True)
        cc = {
            "model_dir": rel,
            "generation": {"greedy": True, "max_new_tokens": MAX_NEW, "stop_token_ids": STOP, "note": NOTE},
            "special_tokens": dslib.special_tokens(proc.tokenizer),
            "cases": entries,
            "environment": dslib.versions(),
        }
        cc.update(extra_fam)
        with open(os.path.join(fam_dir, "chat_cases.json"), "w") as f:
            json.dump(cc, f, indent=1, ensure_ascii=True)
    json.dump(summary, open(sp, "w"), indent=1)


def _seed_base(fam, name):
    return SEED_OVERRIDE.get(f"{fam}/{name}", CASE_SEEDS[fam][name])


if __name__ == "__main__":
    main(sys.argv[1:] or ["deepseek_vl2", "deepseek_vl2_small", "deepseek_vl2_bf16"])
