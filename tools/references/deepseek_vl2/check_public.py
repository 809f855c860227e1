"""Reproduces the public case /work/shared/golden/deepseek_vl2 (chat_one_image_tiled) with the reference code
(DeepSeek-VL2 @ ef9f91e2 + the stand-ins, dslib.py): identical sft_format / rendered prompt / prompt ids /
images_seq_mask / images_spatial_crop, bit-identical pixel values (the processor's `images`), identical greedy
ids, completion text and top-5 ids; logits and intermediates within float32 noise. Also checks that the prompt
path and DeepSeek's conversations path give the same ids for this chat. Writes check_public.json.

Run: PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 nice -n 19 /usr/bin/python3 tools/references/deepseek_vl2/check_public.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dslib  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

root = dslib.PUBLIC
cc = json.load(open(os.path.join(root, "chat_cases.json")))
proc = dslib.load_processor(os.path.join(root, "model"))
model = dslib.load_model(os.path.join(root, "model"))
stop = cc["generation"]["stop_token_ids"]
results = {"public_case_dir": root, "versions": dslib.versions()}
ok_all = True
for case in cc["cases"]:
    cdir = os.path.join(root, case["dir"])
    ref = load_file(os.path.join(cdir, "tensors.safetensors"))
    oracle = json.load(open(os.path.join(cdir, "oracle.json")))
    rec, T, P, pngs = dslib.run_case(model, proc, case["messages"], cc["generation"]["max_new_tokens"], stop)
    r = {}
    r["ds_conversation_equal"] = rec["ds_conversation"] == oracle["ds_conversation"]
    r["sft_format_equal"] = rec["sft_format"] == case["sft_format"] == oracle["sft_format"]
    r["rendered_prompt_equal"] = rec["rendered_prompt"] == case["rendered_prompt"]
    r["prompt_ids_equal"] = rec["prompt_ids"] == ref["prompt_ids"].tolist() == oracle["prompt_ids"]
    r["prompt_ids_conversations_path_equal"] = rec["prompt_ids_conversations_path_equal"]
    r["num_image_tokens_equal"] = rec["num_image_tokens"] == case["num_image_tokens"]
    r["images_spatial_crop_equal"] = rec["images_spatial_crop_wh_tiles"] == case["images_spatial_crop_wh_tiles"]
    r["pixel_values_bit_identical"] = bool(torch.equal(P["pixel_values"], ref["pixel_values"]))
    r["images_seq_mask_equal"] = bool(torch.equal(P["images_seq_mask"], ref["images_seq_mask"]))
    r["completion_ids_equal"] = rec["completion_ids"] == case["expected"]["completion_token_ids"]
    r["completion_text_equal"] = rec["completion_text"] == case["expected"]["completion_text"]
    r["max_abs_logit"] = float(ref["logits"].abs().max())
    r["max_abs_diff_logits"] = float((T["logits"] - ref["logits"]).abs().max())
    r["max_rel_diff_logits"] = r["max_abs_diff_logits"] / r["max_abs_logit"]
    r["max_abs_diff_generate_step_logits"] = float((T["generate_step_logits"] - ref["generate_step_logits"]).abs().max())
    r["max_abs_diff_nocache_step_logits"] = float((T["nocache_step_logits"] - ref["nocache_step_logits"]).abs().max())
    d = 0.0
    same = True
    for a, b in zip(rec["top5"], case["expected"]["top_logprobs"]):
        same &= [x["id"] for x in a] == [x["id"] for x in b]
        d = max(d, max(abs(x["logprob"] - y["logprob"]) for x, y in zip(a, b)))
    r["top5_ids_equal"] = same
    r["max_abs_diff_top5_logprobs"] = d
    for k in ("vision_patch_embed", "vision_features", "projector_out", "image_embeds", "inputs_embeds",
              "text_layer0_out", "text_final_norm_out"):
        r[f"max_abs_diff_{k}"] = float((T[k].reshape(ref[k].shape) - ref[k]).abs().max())
        r[f"max_abs_{k}"] = float(ref[k].abs().max())
    r["min_top1_top2_logit_margin"] = rec["min_top1_top2_logit_margin"]
    r["reference_min_top1_top2_logit_margin"] = oracle["min_top1_top2_logit_margin"]
    r["max_abs_diff_cache_vs_nocache_step_logits"] = rec["max_abs_diff_cache_vs_nocache_step_logits"]
    r["first_moe_layer_routing_sample"] = rec.get("first_moe_layer_routing_sample")
    r["first_moe_layer_distinct_expert_sets"] = rec.get("first_moe_layer_distinct_expert_sets")
    ok = (r["ds_conversation_equal"] and r["sft_format_equal"] and r["rendered_prompt_equal"] and r["prompt_ids_equal"]
          and r["prompt_ids_conversations_path_equal"] and r["num_image_tokens_equal"] and r["images_spatial_crop_equal"]
          and r["pixel_values_bit_identical"] and r["images_seq_mask_equal"] and r["completion_ids_equal"]
          and r["completion_text_equal"] and r["top5_ids_equal"] and r["max_rel_diff_logits"] < 1e-5
          and r["max_abs_diff_top5_logprobs"] < 1e-5)
    r["note"] = ("PASS = identical conversation, sft_format, rendered prompt, prompt ids (prompt and conversations paths), "
                 "image token counts, tile grid and images_seq_mask, bit-identical pixel values, identical greedy ids, text "
                 "and top-5 ids, logits within 1e-5 of the largest |logit|, top-5 logprobs within 1e-5")
    r["PASS"] = ok
    ok_all &= ok
    results[case["name"]] = r
    print(case["name"], json.dumps(r, indent=1))
results["ALL_PASS"] = ok_all
json.dump(results, open(os.path.join(dslib.HERE, "check_public.json"), "w"), indent=1)
print("ALL_PASS", ok_all)
sys.exit(0 if ok_all else 1)
