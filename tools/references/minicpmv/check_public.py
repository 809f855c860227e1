"""Reproduces the public case /work/shared/golden/minicpmv (chat_one_image_sliced) with the reference code:
identical rendered and expanded prompt, prompt ids, image_bound and tgt_sizes, bit-identical pixel values,
identical greedy ids and top-5 ids, logits and intermediates within float32 noise.
Writes tools/references/minicpmv/check_public.json."""
import copy
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
    assert common.template_messages(case["messages"]) == oracle["template_messages"]
    rec, T, pngs = common.run_case(model, proc, case["messages"], stop, cc["generation"]["max_new_tokens"])
    r = {}
    r["rendered_prompt_equal"] = rec["rendered_prompt"] == case["rendered_prompt"] == oracle["rendered_prompt"]
    r["expanded_prompt_equal"] = rec["expanded_prompt"] == oracle["expanded_prompt"]
    r["prompt_ids_equal"] = rec["prompt_ids"] == oracle["prompt_ids"] == ref["prompt_ids"].tolist()
    r["prompt_tokens_equal"] = rec["prompt_tokens"] == case["expected"]["prompt_tokens"]
    r["image_bound_equal"] = rec["image_bound"] == oracle["image_bound"] == case["image_bound"] == ref["image_bound"].tolist()
    r["tgt_sizes_equal"] = rec["tgt_sizes_hw"] == oracle["tgt_sizes_hw"] == ref["tgt_sizes"].tolist()
    r["pixel_values_concat_bit_identical"] = bool(torch.equal(T["pixel_values_concat"], ref["pixel_values_concat"]))
    r["completion_ids_equal"] = rec["completion_ids"] == case["expected"]["completion_token_ids"] == oracle["completion_ids"]
    r["completion_text_equal"] = rec["completion_text"] == case["expected"]["completion_text"]
    r["finish_reason_equal"] = rec["finish_reason"] == case["expected"]["finish_reason"]
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
        if k in T and ref[k].is_floating_point() and k not in ("pixel_values_concat", "logits", "generate_step_logits",
                                                                 "nocache_step_logits"):
            r[f"max_abs_diff_{k}"] = float((T[k].reshape(ref[k].shape) - ref[k]).abs().max())
    # how far each float32 computation is from a float64 one (the text model in float64 on the public inputs_embeds)
    lm64 = copy.deepcopy(model.llm).double()
    with torch.no_grad():
        l64 = lm64(inputs_embeds=ref["inputs_embeds"][None].double(), use_cache=False).logits[0]
        l32 = model.llm(inputs_embeds=ref["inputs_embeds"][None], use_cache=False).logits[0]
    del lm64
    r["float64_check_max_abs_diff_logits_public_vs_f64"] = float((ref["logits"].double() - l64).abs().max())
    r["float64_check_max_abs_diff_logits_here_vs_f64"] = float((l32.double() - l64).abs().max())
    r["float64_check_max_abs_diff_logits_here_vs_public_same_inputs_embeds"] = float((l32 - ref["logits"]).abs().max())
    r["min_top1_top2_logit_margin"] = rec["min_top1_top2_logit_margin"]
    r["public_min_top1_top2_logit_margin"] = oracle["min_top1_top2_logit_margin"]
    r["max_abs_diff_cache_vs_nocache_step_logits"] = rec["max_abs_diff_cache_vs_nocache_step_logits"]
    r["text_attn_implementation"] = rec["text_attn_implementation"]
    r["slicing"] = rec["slicing"]
    ok = (r["rendered_prompt_equal"] and r["expanded_prompt_equal"] and r["prompt_ids_equal"] and r["prompt_tokens_equal"]
          and r["image_bound_equal"] and r["tgt_sizes_equal"] and r["pixel_values_concat_bit_identical"]
          and r["completion_ids_equal"] and r["completion_text_equal"] and r["top5_ids_equal"]
          and r["max_rel_diff_logits"] < 1e-5 and r["max_abs_diff_top5_logprobs"] < 2e-5)
    r["note"] = ("PASS = identical rendered / expanded prompt, prompt ids, image_bound, tgt_sizes, bit-identical pixel "
                 "values, identical greedy ids, text and top-5 ids, logits within 1e-5 of the largest |logit|, top-5 "
                 "logprobs within 2e-5. The text model's float32 rounding noise on this checkpoint is about 2e-5 in the logits "
                 "(activations reach ~30 in layer 0): given the public inputs_embeds, both the public logits and ours are "
                 "that far from a float64 computation (float64_check_*), so the remaining differences are float32 "
                 "noise of a different BLAS kernel, not a semantic difference")
    r["PASS"] = ok
    ok_all &= ok
    results[case["name"]] = r
    print(case["name"], json.dumps(r, indent=1))
results["ALL_PASS"] = ok_all
json.dump(results, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_public.json"), "w"), indent=1)
print("ALL_PASS", ok_all)
sys.exit(0 if ok_all else 1)
