"""Reproduces the public case /work/shared/golden/mllama (chat_one_image) with the reference code:
identical rendered prompt and prompt ids, bit-identical pixel_values / aspect ratio ids / masks,
identical greedy ids and top-5 ids, logits and intermediates within float32 noise.
Writes tools/references/mllama/check_public.json."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

root = common.PUBLIC
cc = json.load(open(os.path.join(root, "chat_cases.json")))
model, proc = common.load(os.path.join(root, "model"))
stop = cc["generation"]["stop_token_ids"]
results = {"public_case_dir": root, "versions": common.versions()}
ok_all = True
for case in cc["cases"]:
    cdir = os.path.join(root, case["dir"])
    ref = load_file(os.path.join(cdir, "tensors.safetensors"))
    oracle = json.load(open(os.path.join(cdir, "oracle.json")))
    ctk = case["request_params"].get("chat_template_kwargs")
    assert common.template_messages(case["messages"]) == case["template_messages"]
    rec, T, pngs = common.run_case(model, proc, case["messages"], stop, cc["generation"]["max_new_tokens"], ctk)
    r = {}
    r["rendered_prompt_equal"] = rec["rendered_prompt"] == case["rendered_prompt"]
    r["prompt_ids_equal"] = rec["prompt_ids"] == ref["prompt_ids"].tolist() == case["expected"]["prompt_token_ids"]
    for k in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "cross_attention_mask",
              "full_text_row_masked_out_mask", "text_cross_attention_allowed", "vision_attention_allowed"):
        r[f"{k}_bit_identical"] = bool(torch.equal(T[k].reshape(ref[k].shape).to(ref[k].dtype), ref[k]))
    r["num_tiles_equal"] = rec["num_tiles"] == oracle["num_tiles"]
    r["completion_ids_equal"] = rec["completion_ids"] == case["expected"]["completion_token_ids"]
    r["completion_text_equal"] = rec["completion_text"] == case["expected"]["completion_text"]
    r["text_layers_run_equal"] = rec["text_layers_run"] == oracle["text_layers_run"]
    r["max_abs_diff_logits"] = float((T["logits"] - ref["logits"]).abs().max())
    r["max_abs_logit"] = float(ref["logits"].abs().max())
    r["max_rel_diff_logits"] = r["max_abs_diff_logits"] / r["max_abs_logit"]
    r["max_abs_diff_generate_step_logits"] = float((T["generate_step_logits"] - ref["generate_step_logits"]).abs().max())
    r["max_abs_diff_nocache_step_logits"] = float((T["nocache_step_logits"] - ref["nocache_step_logits"]).abs().max())
    d = 0.0
    same_ids = True
    for a, b in zip(rec["top5"], case["expected"]["top_logprobs"]):
        same_ids &= [x["id"] for x in a] == [x["id"] for x in b]
        d = max(d, max(abs(x["logprob"] - y["logprob"]) for x, y in zip(a, b)))
    r["top5_ids_equal"] = same_ids
    r["max_abs_diff_top5_logprobs"] = d
    for k in sorted(ref):
        if k in T and ref[k].is_floating_point() and k not in ("pixel_values", "logits", "generate_step_logits",
                                                                 "nocache_step_logits", "full_text_row_masked_out_mask"):
            r[f"max_abs_diff_{k}"] = float((T[k].reshape(ref[k].shape) - ref[k]).abs().max())
    r["min_top1_top2_logit_margin"] = rec["min_top1_top2_logit_margin"]
    ok = (r["rendered_prompt_equal"] and r["prompt_ids_equal"] and all(v for k, v in r.items() if k.endswith("bit_identical"))
          and r["completion_ids_equal"] and r["top5_ids_equal"] and r["max_rel_diff_logits"] < 1e-5
          and r["max_abs_diff_top5_logprobs"] < 1e-5)
    r["note"] = ("PASS = identical rendered prompt and prompt ids, bit-identical pixel_values / aspect ratio ids and mask / "
                 "cross-attention mask, identical greedy ids and top-5 ids, logits within 1e-5 of the largest |logit| "
                 "and top-5 logprobs within 1e-5")
    r["PASS"] = ok
    ok_all &= ok
    results[case["name"]] = r
    print(case["name"], json.dumps(r, indent=1))
results["ALL_PASS"] = ok_all
json.dump(results, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_public.json"), "w"), indent=1)
print("ALL_PASS", ok_all)
sys.exit(0 if ok_all else 1)
