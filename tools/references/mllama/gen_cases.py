"""Computes the new Mllama chat cases. Usage: gen_cases.py [mllama] [mllama_bf16]

  mllama       cases on the public checkpoint (golden/mllama/model: tile 32, patch 8, one cross-attention layer)
  mllama_bf16  cases on the BF16 two-shard checkpoint written by make_checkpoints.py (tile 36, patch 6,
               cross-attention layers [1, 4])
Output: test/fixtures/golden-extra/<family>/{chat_cases.json, cases/<name>/...}; a summary in
tools/references/mllama/summary.json.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from reflib import data_uri, png_bytes, synth_image  # noqa: E402

MAX_NEW = 16
# image i (1, 2, ...) of a case is synth_image(w, h, CASE_SEEDS[family][case] + i); the seeds were picked
# so that every case's smallest top-1/top-2 logit gap stays far above float32 noise
CASE_SEEDS = {
    "mllama": {"one_tile_upscale": 750, "two_tiles_tall": 731, "three_tiles_tall_downscale": 792,
               "four_tiles_2x2_downscale": 743, "two_images_interleaved": 704, "two_images_consecutive": 716,
               "text_before_image": 728, "text_only": 0, "multi_turn": 759},
    "mllama_bf16": {"one_image_2x2": 800, "two_images_two_turns": 801, "text_only": 0},
}
# the cases that also store the vision tower's per-layer outputs (the others keep pixel_values, masks, vision_output,
# projector_out and the text side)
FULL = {"four_tiles_2x2_downscale", "two_images_interleaved", "text_before_image", "one_image_2x2"}
CTK = {"date_string": common.DATE}
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
        _seed[0] = CASE_SEEDS[fam][name]
        return name
    if fam == "mllama":
        C.append((at("one_tile_upscale"), [user(img(24, 20), txt("Describe this small picture."))],
                  "24x20 (W x H), smaller than a 32 px tile: every canvas allows upscaling, the smallest upscale "
                  "(1x1, scale 1.33) wins; resized (bilinear) to 32x26 (W x H) and padded at the bottom to 32x32; "
                  "1 tile, aspect_ratio_id 1"))
        C.append((at("two_tiles_tall"), [user(img(20, 50), txt("What is in this tall image?"))],
                  "20x50, tall: canvas 2x1 tiles (64x32, H x W; smallest upscale 1.28, tied with 2x2, the smaller area "
                  "wins); "
                  "get_image_size_fit_to_canvas keeps 20x50 as it is (no resize: the target is clipped into "
                  "[tile, canvas]), padded right and bottom; 2 tiles stacked vertically, aspect_ratio_id 5"))
        C.append((at("three_tiles_tall_downscale"), [user(img(40, 100), txt("Describe it."))],
                  "40x100, tall and larger than any 1-wide canvas: no canvas allows upscaling, the largest "
                  "downscale 0.8 ties between 3x1 and 4x1 and the smaller area (3x1) wins; resized to 32x80 "
                  "(W x H), padded to 32x96; 3 tiles, aspect_ratio_id 7, the 4th tile is empty (all 0)"))
        C.append((at("four_tiles_2x2_downscale"), [user(img(150, 130), txt("What do you see?"))],
                  "150x130, larger than the largest canvas: 2x2 tiles (64x64) with scale 0.4267; resized to "
                  "64x55 (W x H; antialiased bilinear downscale), padded at the bottom; tiles in row-major order "
                  "(top-left, top-right, bottom-left, bottom-right); aspect_ratio_id 6"))
        C.append((at("two_images_interleaved"), [user(img(200, 40), txt("Compare this strip"), img(30, 24),
                                                  txt("with this small one."))],
                  "two images in one message with text between them: 200x40 -> 1x4 tiles (128x25 resized, "
                  "aspect_ratio_id 4), 30x24 -> 1x1 (32x25). cross_attention_mask: the tokens from image 0's "
                  "<|image|> up to (not including) image 1's see ONLY image 0; from image 1's token to the end "
                  "see ONLY image 1 (not images <= k); tokens before image 0 see none"))
        C.append((at("two_images_consecutive"), [user(img(60, 50), img(45, 90), txt("Which one is taller?"))],
                  "two consecutive <|image|> tokens: get_cross_attention_token_mask extends the first image's "
                  "range to the end, so the text after both sees both images; image 0's own <|image|> row sees only "
                  "image 0, image 1's <|image|> row and everything after it see both. 60x50 -> 2x2 tiles, not "
                  "resized (50 and 60 lie between the tile and the canvas), padded; 45x90 -> 2x1 tiles, resized "
                  "to 32x64 (W x H)"))
        C.append((at("text_before_image"), [user(txt("Look at this picture:"), img(84, 40), txt("What is it?"))],
                  "text before the first image in the same message: those rows (and the header tokens) have no "
                  "image in cross_attention_mask -> full_text_row_masked_out_mask 0. In transformers' eager "
                  "cross-attention such a row's additive mask becomes all zeros (masked_fill then *0), so it attends, "
                  "unmasked, to every vision token of every image (all 4 tile slots, the empty ones too) and that "
                  "attention output is added through the tanh gate; only the cross-attention layer's MLP output "
                  "is multiplied by 0"))
        C.append((at("text_only"), [{"role": "system", "content": "You are a terse assistant."},
                                {"role": "user", "content": "Hello there, how are you?"}],
                  "no image: the template renders the system block (Cutting Knowledge Date, Today Date from "
                  "date_string) and no <|image|>; no pixel_values / cross_attention_mask; the cross-attention "
                  "layers are skipped entirely (text_layers_run), also while decoding"))
        C.append((at("multi_turn"), [user(img(50, 60), txt("What is this?")),
                                 {"role": "assistant", "content": "A small picture."},
                                 user(txt("Describe it in more detail."))],
                  "image in the first user turn, an assistant reply, a second question: every token after the "
                  "<|image|> (the assistant turn and the second question, and the generated tokens) sees the image"))
    elif fam == "mllama_bf16":
        C.append((at("one_image_2x2"), [user(img(100, 90), txt("What is in this image?"))],
                  "the BF16 two-shard checkpoint (upcast to float32 on load), tile 36: 100x90 -> 2x2 tiles "
                  "(72x72) with scale 0.72, resized to 72x64 (W x H); 37 patches per tile padded to 40"))
        C.append((at("two_images_two_turns"), [user(img(50, 30), txt("What is this?")),
                                           {"role": "assistant", "content": "A picture."},
                                           user(img(30, 80), txt("And this one?"))],
                  "an image in each of two user turns: the tokens from the second <|image|> on see only image 1 "
                  "(not image 0), the first turn's tokens after image 0 see only image 0; 50x30 -> 1x2 "
                  "(no resize), 30x80 -> 3x1 (no resize)"))
        C.append((at("text_only"), [{"role": "user", "content": "Write one short sentence."}],
                  "no image, no system message: the template still renders the system block with the date; the "
                  "two cross-attention layers are skipped"))
    return C


def main(fams):
    spec = {
        "mllama": (os.path.join(common.GOLDEN, "mllama", "model"), "../../golden/mllama/model"),
        "mllama_bf16": (os.path.join(common.EXTRA, "mllama_bf16", "model"), "model"),
    }
    sp = os.path.join(common.HERE, "summary.json")
    summary = json.load(open(sp)) if os.path.exists(sp) else {}
    for fam in fams:
        mdir, rel = spec[fam]
        model, proc = common.load(mdir)
        extra_fam = {}
        if fam == "mllama_bf16":  # every float32 parameter equals its BF16 value upcast
            from safetensors.torch import load_file
            sd = {}
            for fn in sorted(set(json.load(open(os.path.join(mdir, "model.safetensors.index.json")))["weight_map"].values())):
                sd.update(load_file(os.path.join(mdir, fn)))
            msd = model.state_dict()
            assert set(sd) == set(msd), set(sd) ^ set(msd)
            assert all(v.dtype == torch.bfloat16 for v in sd.values())
            assert all(torch.equal(msd[k], v.float()) for k, v in sd.items()), "upcast mismatch"
            assert all(p.dtype == torch.float32 for p in model.parameters())
            extra_fam["bf16_upcast_checked"] = True
        gen = json.load(open(os.path.join(mdir, "generation_config.json")))
        stop = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
        fam_dir = os.path.join(common.EXTRA, fam)
        entries = []
        for name, messages, covers in cases_for(fam):
            rec, T, pngs = common.run_case(model, proc, messages, stop, MAX_NEW, CTK)
            extra = {"covers": covers, "chat_template_kwargs": CTK}
            common.write_case(os.path.join(fam_dir, "cases", name), name, messages, rec, T, pngs, extra,
                              full_intermediates=name in FULL)
            ce = {"covers": covers}
            if "tiling" in rec:
                ce["tiling"] = rec["tiling"]
                ce["cross_attention_token_ranges"] = rec["cross_attention_token_ranges"]
            entries.append(common.chat_entry(name, f"cases/{name}", messages, rec, MAX_NEW, CTK, ce))
            summary[f"{fam}/{name}"] = {
                "prompt_tokens": rec["prompt_tokens"], "num_tiles": rec["num_tiles"],
                "aspect_ratio_ids": rec.get("aspect_ratio_ids"), "tiling": [(t["image_wh"], t["tiles_hw"], t["resized_hw"]) for t in rec.get("tiling", [])],
                "ranges": rec.get("cross_attention_token_ranges"), "text_layers_run": rec["text_layers_run"],
                "completion_ids": rec["completion_ids"], "finish": rec["finish_reason"],
                "min_margin": round(rec["min_top1_top2_logit_margin"], 5),
                "cache_vs_nocache": rec["max_abs_diff_cache_vs_nocache_step_logits"],
                "rows_without_image": rec.get("rows_without_image"),
                **{k: v for k, v in rec.items() if k.startswith("rows_without_image_cross_attn_out_max_abs")},
            }
            print(fam, name, json.dumps(summary[f"{fam}/{name}"]), flush=True)
        cc = {
            "model_dir": rel,
            "generation": {"greedy": True, "max_new_tokens": MAX_NEW, "stop_token_ids": stop, "note": common.NOTE},
            "special_tokens": common.special_tokens(proc.tokenizer),
            "cases": entries,
            "environment": common.versions(),
        }
        cc.update(extra_fam)
        with open(os.path.join(fam_dir, "chat_cases.json"), "w") as f:
            json.dump(cc, f, indent=1, ensure_ascii=True)
    json.dump(summary, open(sp, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1:] or ["mllama", "mllama_bf16"])
