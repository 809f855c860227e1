"""Computes the new MiniCPM-V 2.6 chat cases. Usage: gen_cases.py [minicpmv] [minicpmv_bf16] [--search]

  minicpmv       cases on the public checkpoint (golden/minicpmv/model: scale_resolution 56, query_num 16)
  minicpmv_bf16  cases on the BF16 two-shard checkpoint written by make_checkpoints.py (scale_resolution 70,
                 query_num 8, text hidden 128)
  --search       for every case whose smallest top-1/top-2 logit gap is below MIN_MARGIN, try the next image
                 seeds and print the first one that clears it (then put it into CASE_SEEDS by hand)
Output: test/fixtures/golden-extra/<family>/{chat_cases.json, cases/<name>/...}; a summary in
tools/references/minicpmv/summary.json.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import data_uri, png_bytes, synth_smooth  # noqa: E402

MAX_NEW = 12
# The text model's float32 noise on these checkpoints is ~2e-5 in the logits (check_public.json): every case's
# smallest top-1/top-2 gap must be far above it.
MIN_MARGIN = 0.004
# image i (1, 2, ...) of a case is common.synth_smooth(w, h, CASE_SEEDS[family][case] + i)
CASE_SEEDS = {
    "minicpmv": {"small_no_slicing": 100, "wide_2x1": 110, "tall_1x3": 121, "grid_2x2": 130, "max_slices_3x3": 140,
                 "capped_by_max_slice_nums": 150, "request_max_slice_nums_4": 160, "extreme_wide_5x1": 170,
                 "two_images": 180, "text_only": 0, "multi_turn_two_images": 190, "system_text_before_image": 200,
                 "request_use_image_id_false": 210, "exclamation_mark_masked": 220},
    "minicpmv_bf16": {"one_image_2x2": 300, "two_images_two_turns": 310, "text_only": 0},
}
# cases that also keep inputs_embeds, every layer's output and the full logits (the public case golden/minicpmv
# has them for the public checkpoint)
FULL = {"one_image_2x2"}
_seed = [0]


def img(w, h):
    _seed[0] += 1
    return {"type": "image_url", "image_url": {"url": data_uri(png_bytes(synth_smooth(w, h, _seed[0])))}}


def txt(t):
    return {"type": "text", "text": t}


def user(*parts):
    return {"role": "user", "content": list(parts)}


def cases_for(fam, seeds):
    """(name, messages, processor kwargs, what it covers)"""
    C = []

    def at(name):
        _seed[0] = seeds[name]
        return name
    if fam == "minicpmv":
        C.append((at("small_no_slicing"), [user(img(40, 30), txt("What is in this image?"))], None,
                  "40x30: area below scale_resolution^2 (56^2), so no slices; the image itself is upscaled "
                  "(find_best_resize with allow_upscale) to 70x42 (W x H; int(56/sqrt(4/3)) = 48 -> 42, "
                  "int(48*4/3) = 64 -> 70 after rounding to the patch); one <image> run, tgt 3x5"))
        C.append((at("wide_2x1"), [user(img(90, 60), txt("Describe this picture."))], None,
                  "90x60: ratio 5400/3136 -> 2 slices, grid 2 cols x 1 row; source 70x42, refine 84x70, slices 42x70; "
                  "the two <slice> runs are on one line"))
        C.append((at("tall_1x3"), [user(img(60, 180), txt("What is in this tall image?"))], None,
                  "60x180: grid 1 col x 3 rows: the three <slice> runs are separated by '\\n' (one per row); "
                  "source 28x98, slices 56x56"))
        C.append((at("grid_2x2"), [user(img(120, 110), txt("What do you see?"))], None,
                  "120x110: grid 2x2 (candidates 4, 5, 6 slices; |log(120/110) - log(1)| wins): two rows of two "
                  "<slice> runs, '\\n' between the rows; source 56x56, refine 112x112"))
        C.append((at("max_slices_3x3"), [user(img(170, 170), txt("Describe it."))], None,
                  "170x170: ceil(28900/3136) = 10 > max_slice_nums 9, so 9 slices: grid 3x3 (10 excluded); "
                  "10 vision inputs (source + 9), 3 rows of 3 slices"))
        C.append((at("capped_by_max_slice_nums"), [user(img(400, 140), txt("What is this?"))], None,
                  "400x140: ratio 17.9 capped to max_slice_nums 9 -> candidates 8 and 9 slices -> grid 4 cols x 2 "
                  "rows (log-ratio error 0.36 beats 3x3 and 8x1); refine 280x84, slices 70x42; source 98x28"))
        C.append((at("request_max_slice_nums_4"), [user(img(170, 170), txt("Describe it."))], {"max_slice_nums": 4},
                  "the 170x170 of max_slices_3x3 with max_slice_nums=4 passed with the request "
                  "(MiniCPMV.chat(max_slice_nums=...) -> processor(max_slice_nums=...)): multiple = min(10, 4) = 4 "
                  "-> candidates 3 and 4 -> grid 2x2; the placeholder and the slicing both use the request's value"))
        C.append((at("extreme_wide_5x1"), [user(img(400, 30), txt("Read the strip."))], None,
                  "400x30 (ratio 13.3): grid 5x1; source 196x14 (int(56/sqrt(r)) = 15 -> 14 px high, 14 patches wide: "
                  "more than the 10x10 position grid, so several patches share a position bucket); slices 84x28"))
        C.append((at("two_images"), [user(img(90, 60), img(50, 120), txt("Compare these two images."))], None,
                  "two images in one message: <image_id>0</image_id> and <image_id>1</image_id>; 90x60 -> 2x1, "
                  "50x120 -> 1x2 (a '\\n' between its two slice rows); the '\\n' joining the message parts "
                  "separates the two placeholders; slices of both images go through the vision tower as one batch"))
        C.append((at("text_only"), [{"role": "system", "content": "You are a terse assistant."},
                                    {"role": "user", "content": "Hello there, how are you?"}], None,
                  "no image: a system message replaces the template's default one; pixel_values [[]], no image_bound"))
        C.append((at("multi_turn_two_images"), [user(img(45, 40), txt("What is this?")),
                                                {"role": "assistant", "content": "A small picture."},
                                                user(img(100, 100), txt("And this one?"))], None,
                  "an image in each of two user turns: image ids count over the whole prompt (0 in the first turn, "
                  "1 in the second); 45x40 -> no slices (upscaled to 56x56), 100x100 -> 2x2"))
        C.append((at("system_text_before_image"), [{"role": "system", "content": "Answer briefly."},
                                                   user(txt("Look at this:"), img(130, 75), txt("What is it?"))], None,
                  "a system message, and text before the image in the same message: 'Look at this:\\n(<image>./"
                  "</image>)\\nWhat is it?'; 130x75 -> 3x1"))
        C.append((at("request_use_image_id_false"), [user(img(130, 75), txt("What is in this image?"))],
                  {"use_image_id": False},
                  "use_image_id=False passed with the request (MiniCPMV.chat(use_image_id=...)): no "
                  "<image_id>N</image_id> before the <image> run; 130x75 -> 3x1"))
        C.append((at("exclamation_mark_masked"), [user(img(90, 60), txt("Hello! What is in this image?"))], None,
                  "the processor's attention mask is input_ids != 0 (its padding value), and '!' is token 0: the "
                  "reference masks that prompt token (no query attends to it), and generate derives the positions "
                  "from the mask (cumsum - 1, the masked token at 1), so every later token's position is one less "
                  "than its index. expected_if_every_token_attended holds what an all-ones mask gives"))
    elif fam == "minicpmv_bf16":
        C.append((at("one_image_2x2"), [user(img(150, 140), txt("What is in this image?"))], None,
                  "the BF16 two-shard checkpoint (upcast to float32 on load), scale_resolution 70, query_num 8: "
                  "150x140 -> ceil(21000/4900) = 5 -> grid 2x2; source 70x70 (5x5 patches), slices 70x70; 8 <unk> per "
                  "run. Keeps every intermediate"))
        C.append((at("two_images_two_turns"), [user(img(60, 50), txt("What is this?")),
                                               {"role": "assistant", "content": "A picture."},
                                               user(img(200, 60), txt("And this one?"))], None,
                  "an image in each of two user turns: 60x50 -> no slices, upscaled to 70x56 (W x H): height "
                  "int(70/sqrt(1.2)) = 63 and 63/14 = 4.5 rounds to 4 (Python's round: half to even), width "
                  "int(63*1.2) = 75 -> 5 patches; 200x60 -> 3x1 (12000/4900 -> 3 slices), source 126x42, slices 70x70"))
        C.append((at("text_only"), [{"role": "user", "content": "What is the capital of France?"}], None,
                  "no image, no system message: the template adds its default system message"))
    return C


def summary_of(rec):
    return {
        "prompt_tokens": rec["prompt_tokens"], "num_slices": rec["num_slices"],
        "slicing": [(s["image_wh"], s["grid_cols_rows"], s["source_wh"], s["slice_wh"]) for s in rec["slicing"]],
        "tgt_sizes_hw": rec["tgt_sizes_hw"], "completion_ids": rec["completion_ids"], "finish": rec["finish_reason"],
        "min_margin": round(rec["min_top1_top2_logit_margin"], 5),
        "cache_vs_nocache": rec["max_abs_diff_cache_vs_nocache_step_logits"],
    }


def main(fams, search=False):
    spec = {
        "minicpmv": (os.path.join(common.GOLDEN, "minicpmv", "model"), "../../golden/minicpmv/model"),
        "minicpmv_bf16": (os.path.join(common.EXTRA, "minicpmv_bf16", "model"), "model"),
    }
    sp = os.path.join(common.HERE, "summary.json")
    summary = json.load(open(sp)) if os.path.exists(sp) else {}
    for fam in fams:
        mdir, rel = spec[fam]
        model, proc = common.load(mdir)
        extra_fam = {}
        if fam == "minicpmv_bf16":  # every float32 parameter equals its BF16 value upcast
            sd = common.read_state_dict(mdir)
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
        seeds = dict(CASE_SEEDS[fam])
        for name, messages, pk, covers in cases_for(fam, seeds):
            rec, T, pngs = common.run_case(model, proc, messages, stop, MAX_NEW, **(pk or {}))
            if search and rec["min_top1_top2_logit_margin"] < MIN_MARGIN and rec["num_slices"]:
                for s in range(seeds[name] + 1, seeds[name] + 60):
                    trial = dict(seeds, **{name: s})
                    msgs2 = next(m for n, m, _p, _c in cases_for(fam, trial) if n == name)
                    rec2, _T2, _p2 = common.run_case(model, proc, msgs2, stop, MAX_NEW, **(pk or {}))
                    print("  search", name, s, round(rec2["min_top1_top2_logit_margin"], 5), flush=True)
                    if rec2["min_top1_top2_logit_margin"] >= MIN_MARGIN:
                        print("SEED", fam, name, s, flush=True)
                        break
                continue
            assert rec["min_top1_top2_logit_margin"] >= MIN_MARGIN, (name, rec["min_top1_top2_logit_margin"])
            extra = {"covers": covers}
            if pk:
                extra["processor_kwargs"] = pk
            ce = {"covers": covers}
            if rec["prompt_positions_masked"]:
                alt, _Ta, _pa = common.run_case(model, proc, messages, stop, MAX_NEW, attend_all=True, **(pk or {}))
                assert alt["min_top1_top2_logit_margin"] >= MIN_MARGIN, (name, "all attended", alt["min_top1_top2_logit_margin"])
                ce["expected_if_every_token_attended"] = extra["expected_if_every_token_attended"] = {
                    "completion_token_ids": alt["completion_ids"], "completion_text": alt["completion_text"],
                    "finish_reason": alt["finish_reason"], "top_logprobs": alt["top5"],
                    "min_top1_top2_logit_margin": alt["min_top1_top2_logit_margin"]}
            common.write_case(os.path.join(fam_dir, "cases", name), name, messages, rec, T, pngs, extra,
                              full=name in FULL)
            entries.append(common.chat_entry(name, f"cases/{name}", messages, rec, MAX_NEW, pk, ce))
            summary[f"{fam}/{name}"] = summary_of(rec)
            print(fam, name, json.dumps(summary[f"{fam}/{name}"]), flush=True)
        if search:
            continue
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
    if not search:
        json.dump(summary, open(sp, "w"), indent=1)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(args or ["minicpmv", "minicpmv_bf16"], search="--search" in sys.argv)
