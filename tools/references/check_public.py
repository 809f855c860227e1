"""Step 1: prove the environment by reproducing the public golden cases
(test/fixtures/golden/llava and llava_onevision, case chat_one_image).
Checks: prompt ids identical, pixel_values bit-identical, greedy ids identical,
logits / step logits / top-5 logprobs within tolerance. Writes tools/check_public.json."""
import json, os, struct, sys
import torch
sys.path.insert(0, os.path.dirname(__file__))
import reflib
from transformers import LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration
from safetensors.torch import load_file

GOLDEN = os.environ.get("GOLDEN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "fixtures", "golden"))
results = {"versions": reflib.versions()}
ok_all = True
for fam, cls in [("llava", LlavaForConditionalGeneration), ("llava_onevision", LlavaOnevisionForConditionalGeneration)]:
    root = os.path.join(GOLDEN, fam)
    cc = json.load(open(os.path.join(root, "chat_cases.json")))
    model, proc = reflib.load(os.path.join(root, "model"), cls)
    stop = cc["generation"]["stop_token_ids"]
    for case in cc["cases"]:
        cdir = os.path.join(root, case["dir"])
        ref = load_file(os.path.join(cdir, "tensors.safetensors"))
        oracle = json.load(open(os.path.join(cdir, "oracle.json")))
        rec, T, pngs = reflib.run_case(model, proc, case["messages"], stop, fam)
        r = {}
        r["rendered_prompt_equal"] = rec["rendered_prompt"] == case["rendered_prompt"]
        r["prompt_ids_equal"] = rec["prompt_ids"] == ref["prompt_ids"].tolist() == oracle["prompt_ids"]
        r["pixel_values_bit_identical"] = bool(torch.equal(T["pixel_values"], ref["pixel_values"]))
        r["completion_ids_equal"] = rec["completion_ids"] == case["expected"]["completion_token_ids"]
        r["completion_text_equal"] = rec["completion_text"] == case["expected"]["completion_text"]
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
        for k in ["vision_selected_features", "projector_linear_1_out", "image_features", "projector_out",
                  "image_features_packed", "inputs_embeds", "text_layer0_out", "text_layer1_out", "text_final_norm_out"]:
            if k in ref and k in T:
                r[f"max_abs_diff_{k}"] = float((T[k].reshape(ref[k].shape) - ref[k]).abs().max())
        r["min_top1_top2_logit_margin"] = rec["min_top1_top2_logit_margin"]
        ok = (r["rendered_prompt_equal"] and r["prompt_ids_equal"] and r["pixel_values_bit_identical"] and
              r["completion_ids_equal"] and r["top5_ids_equal"] and r["max_rel_diff_logits"] < 1e-5)
        r["note"] = ("PASS = identical prompt ids, bit-identical pixel_values, identical greedy ids and top-5 ids, "
                     "logits within 1e-5 of the largest |logit| (float32 summation-order noise)")
        r["PASS"] = ok
        ok_all &= ok
        results[f"{fam}/{case['name']}"] = r
        print(fam, case["name"], json.dumps(r, indent=1))
results["ALL_PASS"] = ok_all
json.dump(results, open(os.path.join(os.path.dirname(__file__), "check_public.json"), "w"), indent=1)
print("ALL_PASS", ok_all)
sys.exit(0 if ok_all else 1)
