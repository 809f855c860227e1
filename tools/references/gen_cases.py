"""Computes the new chat cases (step 2). Usage: gen_cases.py [family ...]
families: llava llava_onevision llava_next_mistral llava_next_vicuna llava_next_llama3 llava_bf16"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import reflib  # noqa: E402
from reflib import data_uri, png_bytes, synth_image  # noqa: E402
from transformers import (LlavaForConditionalGeneration, LlavaNextForConditionalGeneration,  # noqa: E402
                          LlavaOnevisionForConditionalGeneration)
from transformers.image_processing_utils import select_best_resolution  # noqa: E402
from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image  # noqa: E402

OUT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "golden"))

_seed = [100]


def img(w, h):
    _seed[0] += 1
    return {"type": "image_url", "image_url": {"url": data_uri(png_bytes(synth_image(w, h, _seed[0])))}}


def txt(t):
    return {"type": "text", "text": t}


def user(*parts):
    return {"role": "user", "content": list(parts)}


SYSTEM = {"role": "system", "content": "You are a terse assistant."}


def cases_for(fam):
    _seed[0] = {"llava": 100, "llava_onevision": 200, "llava_next_mistral": 300, "llava_next_vicuna": 400,
                "llava_next_llama3": 500, "llava_bf16": 600}[fam]
    C = []
    if fam == "llava":
        C.append(("two_images", [user(img(150, 100), txt("Compare"), img(100, 150), txt("these."))],
                  "two images in one user turn (150x100 landscape, 100x150 portrait): shortest edge -> 84, center crop 84x84; 2 x 36 image tokens; the template renders both <image> lines before the text parts"))
        C.append(("three_images_resize", [user(img(60, 40), txt("First, small."), img(320, 60), txt("Second, very wide;"), img(90, 200), txt("third, tall. Which differ?"))],
                  "three sizes: 60x40 is smaller than the 84 crop (upscaled: shortest edge 40 -> 84, i.e. 126x84, then center crop), 320x60 is very wide (-> 448x84, center crop keeps the middle 84 columns), 90x200 is tall (-> 84x186, crop rows)"))
        C.append(("text_only", [SYSTEM, {"role": "user", "content": "Hello there, how are you?"}],
                  "no image; system message (rendered without a role prefix) + string content"))
        C.append(("multi_turn", [{"role": "user", "content": "Hi! Can you look at a picture?"},
                                 {"role": "assistant", "content": "Sure. Send it."},
                                 user(img(120, 90), txt("What is this?"))],
                  "user / assistant / user; the image is in the second user turn; assistant text rendered with a trailing space"))
    elif fam == "llava_onevision":
        C.append(("two_images", [user(img(100, 75), img(60, 120), txt("Compare these."))],
                  "two images in one turn, before the text: 100x75 and 60x120 (portrait); both are unpadded (see best_resolution_hw / unpadded_grid_hw in oracle.json)"))
        C.append(("text_only", [SYSTEM, {"role": "user", "content": "Hello there, how are you?"}],
                  "no image; system turn rendered as <|im_start|>system"))
        C.append(("multi_turn", [{"role": "user", "content": "Hi! Can you look at a picture?"},
                                 {"role": "assistant", "content": "Sure. Send it."},
                                 user(img(130, 90), txt("What is this?"))],
                  "user / assistant / user with the image in the second user turn"))
        C.append(("unpad_aspect", [user(img(180, 30), txt("Describe."))],
                  "180x30 (aspect 6): best resolution 60x180 (h x w, 1x3 tiles); the 4x12 feature grid is unpadded to 2x12 (one row removed at top and bottom) before the newline column is appended"))
        C.append(("anyres_max_downscale", [user(img(350, 340), txt("Describe this large image."))],
                  "350x340 -> best resolution 360x360 = 6x6 tiles, a 24x24 feature grid (576) > 9*16: the anyres_max_9 rule bilinearly downsamples it to 12x12 (ratio 2)"))
        C.append(("very_wide", [user(img(360, 50), txt("What is this strip?"))],
                  "very wide 360x50 image: best resolution 60x360 (1x6 tiles), heavy unpadding"))
        C.append(("very_tall", [user(img(50, 360), txt("What is this column?"))],
                  "very tall 50x360 image: best resolution 360x60 (6x1 tiles), heavy unpadding"))
    elif fam.startswith("llava_next"):
        two_first = [user(img(140, 100), txt("Compare"), img(84, 84), txt("these."))]
        if fam == "llava_next_mistral":
            two_first = [{"role": "system", "content": [txt("You are a terse assistant.")]}] + two_first
        C.append(("one_image", [user(img(84, 84), txt("What is in this image?"))],
                  "one square 84x84 image: all pinpoints tie on effective resolution and the first one with the least waste wins (84x168, h x w): 1x2 tiles + base; the 6x12 feature grid is unpadded to 6x6 (columns removed)"))
        C.append(("two_images", two_first,
                  "two images (140x100 and 84x84) in one user turn" + (" after a system message (<<SYS>> block)" if fam == "llava_next_mistral" else "")))
        C.append(("unpad_wide", [user(img(200, 50), txt("Describe this." if fam == "llava_next_vicuna" else "Describe."))],
                  "200x50 (aspect 4 > 3): best resolution 84x252 (h x w; 1x3 tiles); the 6x18 feature grid is unpadded to 4x18 (rows removed)"))
    elif fam == "llava_bf16":
        C.append(("one_image", [user(img(150, 100), txt("What is in this image?"))],
                  "the BF16 two-shard checkpoint (upcast to float32 on load); same prompt shape as the public llava case"))
        C.append(("text_only", [SYSTEM, {"role": "user", "content": "Hello there, how are you?"}], "no image"))
    return C


def anyres_info(model, image_sizes, family):
    cfg = model.config
    P = cfg.vision_config.image_size // cfg.vision_config.patch_size
    info = {"best_resolution_hw": [], "image_grid_hw_tiles": [], "num_tiles": [], "feature_grid_hw": [],
            "unpadded_grid_hw": [], "final_grid_hw": [], "anyres_max_downscaled": []}
    for hw in image_sizes.tolist():
        best = select_best_resolution(hw, cfg.image_grid_pinpoints)
        gh, gw = get_anyres_image_grid_shape(hw, cfg.image_grid_pinpoints, cfg.vision_config.image_size)
        info["best_resolution_hw"].append(list(best))
        info["image_grid_hw_tiles"].append([int(gh), int(gw)])
        info["num_tiles"].append(int(gh * gw + 1))
        info["feature_grid_hw"].append([int(gh * P), int(gw * P)])
        u = unpad_image(torch.zeros(1, gh * P, gw * P), torch.tensor(hw))
        ch, cw = u.shape[1:]
        info["unpadded_grid_hw"].append([int(ch), int(cw)])
        down = False
        if family == "llava_onevision":
            mx = int(cfg.vision_aspect_ratio.strip("anyres_max_"))
            ratio = math.sqrt(ch * cw / (mx * P ** 2))
            if ratio > 1.1:
                down = True
                ch, cw = int(ch // ratio), int(cw // ratio)
        info["anyres_max_downscaled"].append(down)
        info["final_grid_hw"].append([int(ch), int(cw)])
    return info


def main(fams):
    spec = {
        "llava": (LlavaForConditionalGeneration, os.path.join(GOLDEN, "llava/model"), "../../golden/llava/model", "llava"),
        "llava_onevision": (LlavaOnevisionForConditionalGeneration, os.path.join(GOLDEN, "llava_onevision/model"),
                            "../../golden/llava_onevision/model", "llava_onevision"),
        "llava_next_mistral": (LlavaNextForConditionalGeneration, os.path.join(OUT, "llava_next_mistral/model"), "model", "llava_next"),
        "llava_next_vicuna": (LlavaNextForConditionalGeneration, os.path.join(OUT, "llava_next_vicuna/model"), "model", "llava_next"),
        "llava_next_llama3": (LlavaNextForConditionalGeneration, os.path.join(OUT, "llava_next_llama3/model"), "model", "llava_next"),
        "llava_bf16": (LlavaForConditionalGeneration, os.path.join(OUT, "llava_bf16/model"), "model", "llava"),
    }
    summary = {}
    for fam in fams:
        cls, mdir, rel_model_dir, kind = spec[fam]
        model, proc = reflib.load(mdir, cls)
        if fam == "llava_bf16":  # check: every float32 parameter equals the BF16 value upcast
            from safetensors.torch import load_file
            sd = {}
            for fn in sorted(set(json.load(open(os.path.join(mdir, "model.safetensors.index.json")))["weight_map"].values())):
                sd.update(load_file(os.path.join(mdir, fn)))
            msd = model.state_dict()
            assert all(v.dtype == torch.bfloat16 for v in sd.values())
            assert all(torch.equal(msd[k], v.float()) for k, v in sd.items()), "upcast mismatch"
            assert all(p.dtype == torch.float32 for p in model.parameters())
        gen = json.load(open(os.path.join(mdir, "generation_config.json")))
        eos = gen["eos_token_id"]
        stop = eos if isinstance(eos, list) else [eos]
        fam_dir = os.path.join(OUT, fam)
        entries = []
        for name, messages, covers in cases_for(fam):
            rec, T, pngs = reflib.run_case(model, proc, messages, stop, kind)
            extra = {"covers": covers}
            if kind != "llava" and "image_sizes" in T:
                extra.update(anyres_info(model, T["image_sizes"], kind))
                assert extra["num_tiles"] == T["num_tiles"].tolist()
                P1 = model.config.vision_config.image_size // model.config.vision_config.patch_size
                exp = [P1 * P1 + (h * (w + 1) if n > 1 else 1) for (h, w), n in zip(extra["final_grid_hw"], extra["num_tiles"])]
                assert exp == T["image_feature_lens"].tolist() == rec["num_image_tokens"], (exp, T["image_feature_lens"], rec["num_image_tokens"])
            oracle = reflib.write_case(os.path.join(fam_dir, "cases", name), name, messages, rec, T, pngs,
                                       extra_oracle=extra)
            e = reflib.chat_entry(name, f"cases/{name}", messages, rec,
                                  {k: extra[k] for k in ("image_grid_hw_tiles", "num_tiles", "best_resolution_hw") if k in extra})
            entries.append(e)
            summary[f"{fam}/{name}"] = {"prompt_tokens": rec["prompt_tokens"], "num_image_tokens": rec["num_image_tokens"],
                                        "completion_ids": rec["completion_ids"], "finish": rec["finish_reason"],
                                        "min_margin": round(rec["min_top1_top2_logit_margin"], 5),
                                        "cache_vs_nocache": rec["max_abs_diff_cache_vs_nocache_step_logits"],
                                        "pixel_values_shape": rec.get("pixel_values_shape"),
                                        **({"final_grid_hw": extra["final_grid_hw"], "downscaled": extra["anyres_max_downscaled"]} if "final_grid_hw" in extra else {})}
            print(fam, name, json.dumps(summary[f"{fam}/{name}"]), flush=True)
        tok = proc.tokenizer
        specials = {t: tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
        specials.update({str(v): int(k) for k, v in tok.added_tokens_decoder.items()})
        cc = {
            "model_dir": rel_model_dir,
            "generation": {"greedy": True, "max_new_tokens": reflib.MAX_NEW, "stop_token_ids": stop, "note": reflib.NOTE},
            "special_tokens": dict(sorted(specials.items(), key=lambda kv: kv[1])),
            "cases": entries,
            "environment": reflib.versions(),
        }
        with open(os.path.join(fam_dir, "chat_cases.json"), "w") as f:
            json.dump(cc, f, indent=1, ensure_ascii=True)
    p = os.path.join(OUT, "tools", "summary.json")
    old = json.load(open(p)) if os.path.exists(p) else {}
    old.update(summary)
    json.dump(old, open(p, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1:] or ["llava", "llava_onevision", "llava_next_mistral", "llava_next_vicuna", "llava_next_llama3", "llava_bf16"])
