"""Numerical checks of Gemma 3 reference semantics quoted in docs/families/gemma3.md (transformers 4.50).
Writes probes.json here. Every probe runs the unmodified reference code; a 'what-if' changes one input or
config value and says so."""
import io
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3lib  # noqa: E402
from transformers import Gemma3Config, Gemma3ForConditionalGeneration  # noqa: E402

PUB = os.path.join(g3lib.GOLDEN, "gemma3", "model")
SLD = os.path.join(g3lib.EXTRA, "gemma3_sliding", "model")
P = {}


def load_variant(d, **text):
    cfg = Gemma3Config.from_pretrained(d)
    for k, v in text.items():
        setattr(cfg.text_config, k, v)
    return Gemma3ForConditionalGeneration.from_pretrained(d, config=cfg, torch_dtype=torch.float32,
                                                          attn_implementation="eager").eval()


model, proc = g3lib.load(PUB)
tok = proc.tokenizer
cc = json.load(open(os.path.join(g3lib.GOLDEN, "gemma3", "chat_cases.json")))
case = cc["cases"][0]
_, rendered, pngs, images, inputs = g3lib.prepare(proc, case["messages"])

# 1. the processor called on the rendered prompt with its defaults adds a second <bos>
ids_default = proc(text=rendered, images=images, return_tensors="pt")["input_ids"][0].tolist()
msgs_img = g3lib.to_hf_messages(case["messages"])
for part in msgs_img[0]["content"]:
    if part["type"] == "image":
        part["image"] = images[0]  # load_image() passes a PIL image through
ids_tmpl = proc.apply_chat_template(msgs_img, add_generation_prompt=True, tokenize=True, return_dict=True,
                                    return_tensors="pt")
P["double_bos"] = {
    "processor_call_default_add_special_tokens_first_ids": ids_default[:4],
    "apply_chat_template_tokenize_true_first_ids": ids_tmpl["input_ids"][0].tolist()[:4],
    "apply_chat_template_tokenize_true_equals_case_prompt_ids": ids_tmpl["input_ids"][0].tolist() == case["expected"]["prompt_token_ids"],
    "note": "the template writes <bos>; processor(text=...) with the default add_special_tokens=True adds another one; "
            "the processor's apply_chat_template(tokenize=True) passes add_special_tokens=False when the prompt starts with <bos>",
}

# 2. embedding scale: float32 weight times the Python float sqrt(hidden) -> float32 multiply by float32(sqrt(H))
for d in (PUB, SLD):
    m = model if d == PUB else load_variant(SLD)
    E = m.language_model.model.embed_tokens
    H = m.config.text_config.hidden_size
    ids = torch.arange(m.config.text_config.vocab_size)[None]
    with torch.no_grad():
        got = E(ids)[0]
        w = E.weight
        f32 = w * torch.tensor(math.sqrt(H), dtype=torch.float32)
        f64 = (w.double() * math.sqrt(H)).float()
    P[f"embed_scale_hidden_{H}"] = {
        "sqrt_hidden_float64": math.sqrt(H), "sqrt_hidden_as_float32": float(torch.tensor(math.sqrt(H), dtype=torch.float32)),
        "equals_weight_times_float32_scale_bitwise": bool(torch.equal(got, f32)),
        "elements_differing_from_float64_product_rounded": int((got != f64).sum()), "elements": got.numel(),
    }

# 3. soft-capping: attn_logit_softcapping is stored but never passed to the attention function in 4.50
f = g3lib.forward_full
with torch.no_grad():
    base = f(model, inputs).logits
    a = f(load_variant(PUB, attn_logit_softcapping=1.0), inputs).logits
    b = f(load_variant(PUB, final_logit_softcapping=1.0), inputs).logits
P["softcapping"] = {
    "attn_logit_softcapping_1.0_max_abs_diff_logits": float((a - base).abs().max()),
    "final_logit_softcapping_1.0_max_abs_diff_logits": float((b - base).abs().max()),
    "final_logit_softcapping_1.0_equals_tanh_formula": bool(torch.allclose(b, torch.tanh(base / 1.0) * 1.0, atol=1e-6)),
    "note": "released Gemma 3 configs set both to null; in 4.50 attention soft-capping is inactive even when set",
}

# 4. no token_type_ids -> plain causal attention over image tokens (different logits)
with torch.no_grad():
    f2 = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    nt = model(**f2, use_cache=False).logits
P["without_token_type_ids"] = {
    "max_abs_diff_logits_vs_with_token_type_ids": float((nt - base).abs().max()),
    "note": "the bidirectional image attention exists only if token_type_ids (processor output) reach forward/generate",
}

# 5. slow (SentencePiece) tokenizer vs tokenizer.json BPE on awkward strings
ind = g3lib.IndependentGemmaBPE(os.path.join(PUB, "tokenizer.json"))
strings = ["  two  leading spaces", "trailing space ", "tab\tand\nnewline\n\n\n", "caf\u00e9 \u00fc\u00df \u65e5\u672c \U0001F600",
           "What is in this image?", "<start_of_image>x<end_of_image> y", "a\u2581b", "The picture. And the image!"]
agree = {}
for s in strings:
    a_ids = tok(s, add_special_tokens=False)["input_ids"]
    b_ids = ind.encode(s)
    agree[s] = {"slow": a_ids, "tokenizer_json": b_ids, "equal": a_ids == b_ids}
P["tokenizer_slow_vs_tokenizer_json"] = agree

# 6. decode of invalid byte runs: slow tokenizer vs tokenizers' ByteFallback semantics
seqs = {"valid_utf8_two_tokens": [tok.convert_tokens_to_ids("<0xC3>"), tok.convert_tokens_to_ids("<0xA9>")],
        "lone_continuation_then_ascii_byte": [tok.convert_tokens_to_ids("<0xA5>"), tok.convert_tokens_to_ids("<0x41>")],
        "lone_continuation_then_piece": [tok.convert_tokens_to_ids("<0xA5>"), tok.convert_tokens_to_ids("in")]}
P["byte_fallback_decode"] = {k: {"ids": v, "slow": tok.decode(v, skip_special_tokens=True),
                                 "tokenizers_rust_semantics": ind.decode_rust_semantics(v),
                                 "utf8_replace": ind.raw_bytes(v).decode("utf-8", errors="replace")} for k, v in seqs.items()}

# 7. sliding window with a prompt shorter than the window, decode across it (HybridCache's other branch)
ms, ps = g3lib.load(SLD)
W = ms.config.text_config.sliding_window
short = {"input_ids": torch.tensor([[2, 5, 336, 326, 270, 19]]), "token_type_ids": torch.zeros(1, 6, dtype=torch.int64)}
short["attention_mask"] = torch.ones_like(short["input_ids"])
with torch.no_grad():
    g = ms.generate(**short, max_new_tokens=3 * W, do_sample=False, eos_token_id=[1, 6], pad_token_id=0, output_logits=True,
                    return_dict_in_generate=True, temperature=None, top_p=None, top_k=None)
    comp = g.sequences[0, 6:].tolist()
    steps = torch.stack([l[0] for l in g.logits])
    full = torch.cat([short["input_ids"], torch.tensor([comp[:-1]])], 1)
    nc = ms(input_ids=full, attention_mask=torch.ones_like(full), token_type_ids=torch.zeros_like(full), use_cache=False).logits[0, 5:]
P["short_prompt_decode_past_window"] = {
    "prompt_tokens": 6, "sliding_window": W, "generated": len(comp),
    "max_abs_diff_cached_vs_full_recompute": float((steps[:len(comp)] - nc[:len(comp)]).abs().max()),
    "argmax_equal": steps[:len(comp)].argmax(-1).tolist() == nc[:len(comp)].argmax(-1).tolist(),
}

# 8. which layers slide, and the inverse frequencies
tc = ms.config.text_config
P["layer_types_gemma3_sliding"] = g3lib.layer_types(ms.config)
P["inv_freq_global"] = ms.language_model.model.rotary_emb.inv_freq.tolist()
P["inv_freq_local"] = ms.language_model.model.rotary_emb_local.inv_freq.tolist()
exps = torch.arange(0, tc.head_dim, 2, dtype=torch.int64).float() / tc.head_dim
P["inv_freq_global_equals_float32_formula_div_factor"] = bool(torch.equal(
    ms.language_model.model.rotary_emb.inv_freq, (1.0 / (tc.rope_theta ** exps)) / tc.rope_scaling["factor"]))
P["inv_freq_local_equals_float32_formula"] = bool(torch.equal(
    ms.language_model.model.rotary_emb_local.inv_freq, 1.0 / (tc.rope_local_base_freq ** exps)))

# 9. pixel arithmetic: float32(float64(u8) * rescale_factor), then (x - 0.5f) / 0.5f in float32;
#    compare with u8 / 127.5 - 1 computed in float32
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
im = images[0].resize((56, 56), resample=Image.BILINEAR)
a = np.asarray(im)
ref = inputs["pixel_values"][0].numpy().transpose(1, 2, 0)
x = (a.astype(np.float64) * 0.00392156862745098).astype(np.float32)
exact = (x - np.float32(0.5)) / np.float32(0.5)
alt = a.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
u = np.arange(256)
lut = (((u.astype(np.float64) * 0.00392156862745098).astype(np.float32) - np.float32(0.5)) / np.float32(0.5))
P["pixel_arithmetic"] = {
    "reference_equals_rescale_then_normalize": bool((exact == ref).all()),
    "elements_differing_if_u8_div_127.5_minus_1": int((alt != ref).sum()), "elements": int(ref.size),
    "all_256_values_float32_u8_div_127.5_minus_1_differs": int((u.astype(np.float32) / np.float32(127.5) - np.float32(1) != lut).sum()),
    "all_256_values_float64_u8_div_127.5_minus_1_rounded_differs": int(((u / 127.5 - 1).astype(np.float32) != lut).sum()),
    "all_256_values_float32_u8_times_2_over_255_minus_1_differs": int((u.astype(np.float32) * np.float32(2 / 255) - np.float32(1) != lut).sum()),
}

json.dump(P, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "probes.json"), "w"), indent=1, ensure_ascii=True)
print(json.dumps(P, indent=1, ensure_ascii=True)[:6000])
