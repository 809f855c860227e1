"""Proves the environment by reproducing the public Gemma 3 case (golden/gemma3, chat_one_image).

Checks: rendered prompt and prompt ids identical, token_type_ids identical, pixel_values bit-identical,
greedy ids identical, the attention masks of every layer identical to the shipped `text_layer{i}_allowed`,
logits / step logits / top-5 logprobs / intermediates within float32 noise. Writes check_public.json here.
Reads GOLDEN/gemma3 (default test/fixtures/golden/gemma3), or PUBLIC=/work/shared/golden/gemma3."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3lib  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

root = os.environ.get("PUBLIC") or os.path.join(g3lib.GOLDEN, "gemma3")
cc = json.load(open(os.path.join(root, "chat_cases.json")))
model, proc = g3lib.load(os.path.join(root, cc["model_dir"]))
stop = cc["generation"]["stop_token_ids"]
results = {"versions": g3lib.versions(), "public_dir": os.path.relpath(root, g3lib.REPO) if root.startswith(g3lib.REPO) else root}
ok_all = True
for case in cc["cases"]:
    cdir = os.path.join(root, case["dir"])
    ref = load_file(os.path.join(cdir, "tensors.safetensors"))
    oracle = json.load(open(os.path.join(cdir, "oracle.json")))
    rec, T, _ = g3lib.run_case(model, proc, case["messages"], stop, max_new=cc["generation"]["max_new_tokens"],
                               keep_layer_outputs=True, keep_masks=True)
    r = {}
    r["rendered_prompt_equal"] = rec["rendered_prompt"] == case["rendered_prompt"] == oracle["rendered_prompt"]
    r["expanded_prompt_equal"] = rec["expanded_prompt"] == oracle["expanded_prompt"]
    r["prompt_ids_equal"] = rec["prompt_ids"] == case["expected"]["prompt_token_ids"] == ref["prompt_ids"].tolist()
    r["token_type_ids_equal"] = rec["token_type_ids"] == oracle["token_type_ids"] == ref["token_type_ids"][0].tolist()
    r["layer_types_equal"] = rec["layer_types"] == oracle["layer_types"]
    r["pixel_values_bit_identical"] = bool(torch.equal(T["pixel_values"], ref["pixel_values"]))
    r["completion_ids_equal"] = rec["completion_ids"] == case["expected"]["completion_token_ids"]
    r["completion_text_equal"] = rec["completion_text"] == case["expected"]["completion_text"]
    r["completion_text_rust_semantics_equal"] = (
        rec["completion_text_by_decoder"]["tokenizers_rust_bytefallback_semantics"]
        == case["expected"]["completion_text_by_decoder"]["tokenizers_rust"])
    r["masks_equal_text_layer_allowed"] = all(
        torch.equal(T[f"text_layer{i}_allowed"], ref[f"text_layer{i}_allowed"]) for i in range(len(rec["layer_types"])))
    r["max_abs_diff_logits"] = float((T["logits"] - ref["logits"]).abs().max())
    r["max_abs_logit"] = float(ref["logits"].abs().max())
    r["max_rel_diff_logits"] = r["max_abs_diff_logits"] / r["max_abs_logit"]
    r["max_abs_diff_generate_step_logits"] = float((T["generate_step_logits"] - ref["generate_step_logits"]).abs().max())
    r["max_abs_diff_nocache_step_logits"] = float((T["nocache_step_logits"] - ref["nocache_step_logits"]).abs().max())
    d, same = 0.0, True
    for a, b in zip(rec["top5"], case["expected"]["top_logprobs"]):
        same &= [x["id"] for x in a] == [x["id"] for x in b]
        d = max(d, max(abs(x["logprob"] - y["logprob"]) for x, y in zip(a, b)))
    r["top5_ids_equal"] = same
    r["max_abs_diff_top5_logprobs"] = d
    for k in ["vision_embeddings", "vision_last_hidden_state", "projector_avg_pool_out", "projector_soft_emb_norm_out",
              "image_features", "text_embeds_scaled", "inputs_embeds", "text_layer0_out", "text_layer1_out",
              "text_layer2_out", "text_layer3_out", "text_final_norm_out"]:
        if k in ref and k in T:
            r[f"max_abs_diff_{k}"] = float((T[k].reshape(ref[k].shape) - ref[k]).abs().max())
    r["min_top1_top2_logit_margin"] = rec["min_top1_top2_logit_margin"]
    r["max_abs_diff_cache_vs_nocache_step_logits"] = rec["max_abs_diff_cache_vs_nocache_step_logits"]
    ok = (r["rendered_prompt_equal"] and r["prompt_ids_equal"] and r["token_type_ids_equal"] and
          r["pixel_values_bit_identical"] and r["completion_ids_equal"] and r["top5_ids_equal"] and
          r["masks_equal_text_layer_allowed"] and r["max_abs_diff_top5_logprobs"] < 1e-5 and r["max_rel_diff_logits"] < 1e-5)
    r["note"] = ("PASS = identical prompt ids / token types / masks, bit-identical pixel_values, identical greedy ids and "
                 "top-5 ids, top-5 logprobs within 1e-5, logits within 1e-5 of the largest |logit|")
    r["PASS"] = ok
    ok_all &= ok
    results[case["name"]] = r
    print(case["name"], json.dumps(r, indent=1))
results["ALL_PASS"] = ok_all
json.dump(results, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_public.json"), "w"), indent=1)
print("ALL_PASS", ok_all)
sys.exit(0 if ok_all else 1)
