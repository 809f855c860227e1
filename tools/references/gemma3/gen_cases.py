"""Computes the Gemma 3 chat cases in test/fixtures/golden-extra/gemma3*/ (and the variant checks recorded
with them). Usage: gen_cases.py [gemma3] [gemma3_sliding] [gemma3_bf16]"""
import copy
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3lib  # noqa: E402
from g3lib import data_uri, png_bytes, synth_image  # noqa: E402
from transformers import Gemma3Config, Gemma3ForConditionalGeneration  # noqa: E402
from transformers.models.gemma3 import modeling_gemma3  # noqa: E402

_seed = [0]


def img(w, h, noise=6.0, levels=None):
    _seed[0] += 1
    return {"type": "image_url", "image_url": {"url": data_uri(png_bytes(synth_image(w, h, _seed[0], noise, levels)))}}


def txt(t):
    return {"type": "text", "text": t}


def user(*parts):
    return {"role": "user", "content": list(parts)}


SYSTEM = {"role": "system", "content": "You are a terse assistant."}


def cases_for(fam):
    """(name, messages, covers, options)"""
    _seed[0] = {"gemma3": 700, "gemma3_sliding": 800, "gemma3_bf16": 900}[fam]
    C = []
    if fam == "gemma3":
        C.append(("two_images", [user(img(120, 60), txt("Compare"), img(40, 90), txt("these."))],
                  "two images in one user turn: 120x60 (wide, downscaled to 56x56 with aspect change) and 40x90 "
                  "(tall, smaller than 56: upscaled in x, downscaled in y); each becomes '\\n\\n<start_of_image>' + 16 x "
                  "<image_soft_token> + '<end_of_image>\\n\\n' in place; the template keeps parts in order", {}))
        C.append(("three_images", [user(img(200, 150), txt("First, large."), img(30, 30), txt("Second, tiny;"),
                                        img(56, 56), txt("third, exact. Which differ?"))],
                  "three images: 200x150 (larger than 56: antialiased bilinear downscale), 30x30 (upscale), 56x56 "
                  "(resize to the same size: PIL returns a copy, pixel values are the plain rescale+normalize); "
                  "image tokens of all three images attend to each other bidirectionally in 4.50", {}))
        C.append(("text_only", [{"role": "user", "content": "Hello there, how are you?"}],
                  "no image, string content; no pixel_values, token_type_ids all 0", {}))
        C.append(("multi_turn", [user(img(70, 50), txt("What is this?")),
                                 {"role": "assistant", "content": "A picture of shapes."},
                                 {"role": "user", "content": "Describe it more."}],
                  "user [image, text] / assistant (rendered as '<start_of_turn>model\\n...<end_of_turn>\\n') / "
                  "user text: the image is in the first turn, the question in the second", {}))
        C.append(("system_message", [SYSTEM, user(img(64, 48), txt("What is in this image?"))],
                  "a system message: Gemma's template has no system role, it prepends the system text + '\\n\\n' to "
                  "the first user turn (before the image placeholder)", {}))
        C.append(("pan_and_scan", [user(img(800, 256, noise=0, levels=6), img(256, 600, noise=0, levels=6),
                                        img(300, 280, noise=0, levels=6), txt("Describe the three images."))],
                  "do_pan_and_scan=True (request images_kwargs; the other pan-and-scan parameters are the "
                  "processor defaults: min crop 256, max 4 crops, min ratio 1.2): 800x256 -> 3 crops of 267x256 "
                  "(last one 266 wide), 256x600 -> 2 crops of 256x300, 300x280 (ratio 1.07 < 1.2) -> no crop; "
                  "each image with crops is replaced by 'Here is the original image <start_of_image> and here are "
                  "some crops to help you see better <start_of_image> <start_of_image> ...' before the image "
                  "expansion; pixel_values holds image, its crops, next image, ... (8 x 56x56)",
                  {"images_kwargs": {"do_pan_and_scan": True}}))
    elif fam == "gemma3_sliding":
        C.append(("sliding_two_images", [user(txt("Look at the first picture here."), img(90, 60),
                                              txt("Now the second one, which is a tall one:"), img(50, 100),
                                              txt("Tell me what differs between the two pictures, in detail."))],
                  "sliding_window 10 < the 16-token image runs: inside an image run a token sees the whole run in "
                  "global layers, but in sliding layers only keys j > i - 10 (earlier image tokens drop out, later "
                  "ones stay visible: no upper bound); image tokens of the first image also see all 16 tokens of "
                  "the second (bidirectional across images in 4.50); 24 greedy tokens cross further windows",
                  {"max_new": 24, "keep_layer_outputs": True, "keep_masks": True, "variants": True}))
        C.append(("sliding_text_long", [SYSTEM, {"role": "user", "content":
                                                 "This is a longer text prompt, with no image at all, so that the "
                                                 "sliding window of ten tokens moves many times. What is it?"}],
                  "text only, long prompt + 24 greedy tokens: sliding layers see the last 10 positions (i-10 < j <= i), "
                  "global layers everything; rope: global layers theta 1e6 with linear scaling 8, sliding layers "
                  "theta 1e4 unscaled",
                  {"max_new": 24, "variants": True}))
        C.append(("sliding_multi_turn", [user(img(100, 100), txt("What is this?")),
                                         {"role": "assistant", "content": "Some shapes and colors."},
                                         user(img(64, 40), txt("And this one?"))],
                  "two turns, one image per user turn, 20 greedy tokens",
                  {"max_new": 20}))
    elif fam == "gemma3_bf16":
        C.append(("one_image", [user(img(84, 56), txt("What is in this image?"))],
                  "the BF16 two-shard checkpoint (upcast to float32 on load); same prompt shape as the public case", {}))
        C.append(("text_only", [SYSTEM, {"role": "user", "content": "Hello there, how are you?"}],
                  "system + user string, no image", {}))
        C.append(("short_prompt_past_window", [{"role": "user", "content": "Hi"}],
                  "a 15-token prompt, shorter than sliding_window 24, and 30 greedy tokens: decode crosses query position "
                  "23 = W - 1 and goes on to 44. expected = the greedy loop on the full forward without cache (the "
                  "window j > p - W everywhere); transformers 4.50 generate() departs from it from query position 23 on "
                  "(HybridCache rolls its sliding buffer one step early), kept in oracle.json as hf_generate_hybrid_cache",
                  {"max_new": 30, "allow_generate_quirk": True}))
    return C


# ---------------------------------------------------------------- variant checks (what-if, not the reference)
def full_sequence_inputs(inputs, comp):
    """prompt + completion[:-1]: logits at positions S-1 .. S+len-2 are the step logits."""
    ext = torch.tensor([comp[:-1]], dtype=torch.int64)
    ids = torch.cat([inputs["input_ids"], ext], 1)
    tt = torch.cat([inputs["token_type_ids"], torch.zeros_like(ext)], 1)
    f = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": tt}
    if "pixel_values" in inputs:
        f["pixel_values"] = inputs["pixel_values"]
    return f


def variant_model(model_dir, text_overrides):
    cfg = Gemma3Config.from_pretrained(model_dir)
    for k, v in text_overrides.items():
        setattr(cfg.text_config, k, v)
    m = Gemma3ForConditionalGeneration.from_pretrained(model_dir, config=cfg, torch_dtype=torch.float32,
                                                       attn_implementation="eager")
    return m.eval()


class ExtraMask:
    """Adds masking on top of what 4.50 computes (for what-if comparisons only)."""

    def __init__(self, fn):
        self.fn, self.orig = fn, modeling_gemma3.eager_attention_forward

    def __enter__(self):
        fn, orig = self.fn, self.orig

        def wrapped(module, query, key, value, attention_mask, **kw):
            m = attention_mask[:, :, :, : key.shape[-2]].clone()
            extra = fn(module, m.shape[-2], m.shape[-1])
            if extra is not None:
                m = m.masked_fill(torch.from_numpy(extra)[None, None], torch.finfo(m.dtype).min)
            return orig(module, query, key, value, m, **kw)

        modeling_gemma3.eager_attention_forward = wrapped
        return self

    def __exit__(self, *a):
        modeling_gemma3.eager_attention_forward = self.orig


def variants(model, model_dir, inputs, comp, ref_step_logits):
    S = inputs["input_ids"].shape[1]
    f = full_sequence_inputs(inputs, comp)
    tt = f["token_type_ids"][0].numpy()
    L = f["input_ids"].shape[1]
    tc = model.config.text_config
    W = tc.sliding_window
    out = {}

    def compare(name, logits):
        steps = logits[0, S - 1:].float()
        d = (steps - ref_step_logits).abs()
        out[name] = {"max_abs_diff_step_logits": float(d.max()),
                     "greedy_differs_at_steps": [int(i) for i in np.nonzero((steps.argmax(-1) != ref_step_logits.argmax(-1)).numpy())[0]]}

    with torch.no_grad():
        base = model(**f, use_cache=False).logits
        assert float((base[0, S - 1:] - ref_step_logits).abs().max()) < 1e-4
        out["reference_recomputed_max_abs_diff"] = float((base[0, S - 1:] - ref_step_logits).abs().max())
        for w in (W - 1, W + 1, 4096):
            m = variant_model(model_dir, {"sliding_window": w})
            compare(f"sliding_window_{w}", m(**f, use_cache=False).logits)
        m = variant_model(model_dir, {"rope_scaling": None})
        compare("rope_scaling_none", m(**f, use_cache=False).logits)
        m = variant_model(model_dir, {"rope_local_base_freq": tc.rope_theta})
        compare("rope_local_base_freq_eq_rope_theta", m(**f, use_cache=False).logits)
        m = variant_model(model_dir, {"rope_theta": tc.rope_local_base_freq})
        compare("rope_theta_eq_rope_local_base_freq", m(**f, use_cache=False).logits)
        m = variant_model(model_dir, {"query_pre_attn_scalar": tc.head_dim})
        compare("query_pre_attn_scalar_eq_head_dim", m(**f, use_cache=False).logits)
        if tt.any():
            f2 = dict(f)
            f2["token_type_ids"] = None
            compare("no_bidirectional_image_attention", model(**f2, use_cache=False).logits)
            per_img = g3lib.expected_allowed(tt.tolist(), "global", W, per_image_runs=True)
            if (per_img != g3lib.expected_allowed(tt.tolist(), "global", W)).any():
                add = torch.zeros(1, 1, L, L)
                add[0, 0][torch.from_numpy(per_img == 0)] = torch.finfo(torch.float32).min
                f3 = dict(f)
                f3["attention_mask"] = add
                compare("bidirectional_only_within_each_image", model(**f3, use_cache=False).logits)

            def upper(module, q, k):  # sliding layers: also mask keys j >= i + W (a symmetric window)
                if not module.is_sliding:
                    return None
                i = np.arange(q)[:, None]
                j = np.arange(k)[None, :]
                return j >= i + W
            with ExtraMask(upper):
                compare("sliding_also_masks_future_keys_beyond_window", model(**f, use_cache=False).logits)
    return out


def main(fams):
    spec = {
        "gemma3": (os.path.join(g3lib.GOLDEN, "gemma3", "model"), "../../golden/gemma3/model"),
        "gemma3_sliding": (os.path.join(g3lib.EXTRA, "gemma3_sliding", "model"), "model"),
        "gemma3_bf16": (os.path.join(g3lib.EXTRA, "gemma3_bf16", "model"), "model"),
    }
    summary = {}
    for fam in fams:
        mdir, rel_model_dir = spec[fam]
        model, proc = g3lib.load(mdir)
        if fam == "gemma3_bf16":  # every float32 parameter equals the BF16 value upcast
            from safetensors.torch import load_file
            sd = {}
            for fn in sorted(set(json.load(open(os.path.join(mdir, "model.safetensors.index.json")))["weight_map"].values())):
                sd.update(load_file(os.path.join(mdir, fn)))
            msd = model.state_dict()
            assert all(v.dtype == torch.bfloat16 for v in sd.values())
            assert all(torch.equal(msd[k], v.float()) for k, v in sd.items()), "upcast mismatch"
            assert torch.equal(msd["language_model.lm_head.weight"], sd["language_model.model.embed_tokens.weight"].float())
            assert all(p.dtype == torch.float32 for p in model.parameters())
        gen = json.load(open(os.path.join(mdir, "generation_config.json")))
        stop = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
        fam_dir = os.path.join(g3lib.EXTRA, fam)
        entries = []
        for name, messages, covers, opt in cases_for(fam):
            rec, T, pngs = g3lib.run_case(model, proc, messages, stop, max_new=opt.get("max_new", 12),
                                          images_kwargs=opt.get("images_kwargs"),
                                          keep_layer_outputs=opt.get("keep_layer_outputs", False),
                                          keep_masks=opt.get("keep_masks", False),
                                          allow_generate_quirk=opt.get("allow_generate_quirk", False))
            extra = {"covers": covers}
            if opt.get("variants"):
                _, _, _, _, inputs = g3lib.prepare(proc, messages, opt.get("images_kwargs"))
                extra["variant_checks"] = variants(model, mdir, inputs, rec["completion_ids"], T["generate_step_logits"])
                extra["variant_checks_note"] = (
                    "what-if runs (NOT the reference): the same prompt + completion through the model with one thing "
                    "changed; max |diff| of the logits at the generated steps. Non-zero = the cases really test it.")
            g3lib.write_case(os.path.join(fam_dir, "cases", name), name, messages, rec, T, pngs, extra_oracle=extra)
            ce = {"covers": covers, "completion_method": rec["completion_method"]}
            if "hf_generate_hybrid_cache" in rec:
                h = rec["hf_generate_hybrid_cache"]
                ce["hf_generate_hybrid_cache"] = {k: h[k] for k in ("note", "completion_ids", "first_departing_step",
                                                                    "first_departing_query_position")}
            e = g3lib.chat_entry(name, f"cases/{name}", messages, rec, ce)
            entries.append(e)
            summary[f"{fam}/{name}"] = {
                "prompt_tokens": rec["prompt_tokens"], "num_image_tokens": rec["num_image_tokens"],
                "num_crops": rec["num_crops"], "image_token_runs": rec["image_token_runs"],
                "completion_ids": rec["completion_ids"], "finish": rec["finish_reason"],
                "min_margin": round(rec["min_top1_top2_logit_margin"], 5),
                "cache_vs_nocache": rec["max_abs_diff_cache_vs_nocache_step_logits"],
                "pixel_values_shape": rec.get("pixel_values_shape"),
                **({"variants": {k: (round(v["max_abs_diff_step_logits"], 5), v["greedy_differs_at_steps"])
                                 if isinstance(v, dict) else v for k, v in extra["variant_checks"].items()}}
                   if "variant_checks" in extra else {}),
            }
            print(fam, name, json.dumps(summary[f"{fam}/{name}"]), flush=True)
        tok = proc.tokenizer
        specials = {str(v): int(k) for k, v in tok.added_tokens_decoder.items()}
        cc = {
            "model_dir": rel_model_dir,
            "generation": {"greedy": True, "max_new_tokens": "per case: request_params.max_tokens",
                           "stop_token_ids": stop, "note": g3lib.NOTE},
            "special_tokens": dict(sorted(specials.items(), key=lambda kv: kv[1])),
            "cases": entries,
            "environment": g3lib.versions(),
        }
        with open(os.path.join(fam_dir, "chat_cases.json"), "w") as f:
            json.dump(cc, f, indent=1, ensure_ascii=True)
    p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary.json")
    old = json.load(open(p)) if os.path.exists(p) else {}
    old.update(summary)
    json.dump(old, open(p, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1:] or ["gemma3", "gemma3_sliding", "gemma3_bf16"])
