"""A second, independent implementation of Gemma 3 (chat template -> pixels -> tokens -> SigLIP -> projector ->
decoder -> greedy decode with a KV cache), written from docs/families/gemma3.md with plain torch tensor ops on
the checkpoint's tensors (no transformers code, no SentencePiece). It checks the porting reference: for every
case of golden/gemma3 and golden-extra/gemma3*, the rendered prompt, the expanded prompt's token ids,
token_type_ids, pixel_values (bit-identical), the greedy ids and the step logits must agree with what
transformers computed. Writes independent_port.json here.

Run: PYTHONPATH=/tmp/llava-env/src /usr/bin/python3 tools/references/gemma3/independent_port.py
(only the safetensors stand-in and numpy/torch/PIL are used from that path).
"""
import base64
import gzip
import io
import json
import math
import os
import re
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from g3lib_tok import IndependentGemmaBPE  # noqa: E402  (tokenizer.json reader, no transformers import)
from safetensors.torch import load_file, load as st_load  # noqa: E402

torch.set_num_threads(1)
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GOLDEN = os.environ.get("GOLDEN", os.path.join(REPO, "test", "fixtures", "golden"))
EXTRA = os.environ.get("GOLDEN_EXTRA", os.path.join(REPO, "test", "fixtures", "golden-extra"))
F32 = torch.float32


# ------------------------------------------------------------------ checkpoint
def load_checkpoint(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    sd = {}
    if os.path.exists(idx):
        for fn in sorted(set(json.load(open(idx))["weight_map"].values())):
            sd.update(load_file(os.path.join(d, fn)))
    else:
        sd = load_file(os.path.join(d, "model.safetensors"))
    sd = {k: v.to(F32) for k, v in sd.items()}  # BF16 -> F32 exactly
    pre = json.load(open(os.path.join(d, "preprocessor_config.json")))
    proc = json.load(open(os.path.join(d, "processor_config.json")))
    tok_cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
    tmpl = json.load(open(os.path.join(d, "chat_template.json")))["chat_template"]
    return cfg, sd, pre, proc, tok_cfg, tmpl


# ------------------------------------------------------------------ chat template (Gemma 3's, by hand)
def render(messages, bos="<bos>"):
    """messages: OpenAI style (string content or parts with type text / image_url)."""
    out = bos
    if messages[0]["role"] == "system":
        c = messages[0]["content"]
        prefix = (c if isinstance(c, str) else c[0]["text"]) + "\n\n"  # not trimmed
        loop = messages[1:]
    else:
        prefix, loop = "", messages
    for k, m in enumerate(loop):
        if (m["role"] == "user") != (k % 2 == 0):
            raise ValueError("Conversation roles must alternate user/assistant/user/assistant/...")
        role = "model" if m["role"] == "assistant" else m["role"]
        out += "<start_of_turn>" + role + "\n" + (prefix if k == 0 else "")
        c = m["content"]
        if isinstance(c, str):
            out += c.strip()
        else:
            for p in c:
                if p["type"] == "image_url":
                    out += "<start_of_image>"
                elif p["type"] == "text":
                    out += p["text"].strip()
        out += "<end_of_turn>\n"
    return out + "<start_of_turn>model\n"


# ------------------------------------------------------------------ images
def pan_and_scan(a, min_crop, max_crops, min_ratio):
    h, w = a.shape[:2]
    if w >= h:
        if w / h < min_ratio:
            return []
        nw = int(math.floor(w / h + 0.5))
        nw = min(int(math.floor(w / min_crop)), nw)
        nw = min(max_crops, max(2, nw))
        nh = 1
    else:
        if h / w < min_ratio:
            return []
        nh = int(math.floor(h / w + 0.5))
        nh = min(int(math.floor(h / min_crop)), nh)
        nh = min(max_crops, max(2, nh))
        nw = 1
    cw, ch = int(math.ceil(w / nw)), int(math.ceil(h / nh))
    if min(cw, ch) < min_crop:
        return []
    return [a[ch * i:ch * i + ch, cw * j:cw * j + cw] for i in range(nh) for j in range(nw)]


def to_pixels(a, pre):
    im = Image.fromarray(a).resize((pre["size"]["width"], pre["size"]["height"]), resample=pre["resample"])
    x = np.asarray(im).astype(np.float64) * pre["rescale_factor"]
    x = x.astype(np.float32)
    mean = np.array(pre["image_mean"], dtype=np.float32)
    std = np.array(pre["image_std"], dtype=np.float32)
    x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def preprocess(pngs, pre, pas):
    pix, crops = [], []
    for p in pngs:
        a = np.asarray(Image.open(io.BytesIO(p)).convert("RGB"))
        cs = pan_and_scan(a, *pas) if pas else []
        crops.append(len(cs))
        pix += [to_pixels(a, pre)] + [to_pixels(np.ascontiguousarray(c), pre) for c in cs]
    return (torch.stack(pix) if pix else None), crops


def expand(rendered, crops, n_tokens):
    parts = rendered.split("<start_of_image>")
    s = parts[0]
    for n, rest in zip(crops, parts[1:]):
        s += ("Here is the original image <start_of_image> and here are some crops to help you see better "
              + " ".join(["<start_of_image>"] * n)) if n else "<start_of_image>"
        s += rest
    return s.replace("<start_of_image>", "\n\n<start_of_image>" + "<image_soft_token>" * n_tokens + "<end_of_image>\n\n")


# ------------------------------------------------------------------ model pieces
def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gemma_rms(x, w, eps):
    x = x.to(F32)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def siglip(pix, sd, vc):
    pre = "vision_tower.vision_model."
    n, _, H, W = pix.shape
    p = vc["patch_size"]
    P = H // p
    eps = vc.get("layer_norm_eps", 1e-6)
    # patches in row-major order, each flattened as [channel, y, x] like the conv weight
    x = pix.reshape(n, 3, P, p, P, p).permute(0, 2, 4, 1, 3, 5).reshape(n, P * P, 3 * p * p)
    wconv = sd[pre + "embeddings.patch_embedding.weight"].reshape(vc["hidden_size"], -1)
    h = x @ wconv.T + sd[pre + "embeddings.patch_embedding.bias"]
    h = h + sd[pre + "embeddings.position_embedding.weight"][None]
    heads = vc["num_attention_heads"]
    hd = vc["hidden_size"] // heads
    for i in range(vc["num_hidden_layers"]):
        L = f"{pre}encoder.layers.{i}."
        r = h
        y = layer_norm(h, sd[L + "layer_norm1.weight"], sd[L + "layer_norm1.bias"], eps)

        def proj(nm):
            return (y @ sd[L + f"self_attn.{nm}.weight"].T + sd[L + f"self_attn.{nm}.bias"]).reshape(n, -1, heads, hd).transpose(1, 2)
        q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
        a = torch.softmax((q @ k.transpose(-1, -2)) * hd ** -0.5, -1) @ v
        a = a.transpose(1, 2).reshape(n, -1, heads * hd)
        h = r + (a @ sd[L + "self_attn.out_proj.weight"].T + sd[L + "self_attn.out_proj.bias"])
        r = h
        y = layer_norm(h, sd[L + "layer_norm2.weight"], sd[L + "layer_norm2.bias"], eps)
        y = gelu_tanh(y @ sd[L + "mlp.fc1.weight"].T + sd[L + "mlp.fc1.bias"]) @ sd[L + "mlp.fc2.weight"].T + sd[L + "mlp.fc2.bias"]
        h = r + y
    return layer_norm(h, sd[pre + "post_layernorm.weight"], sd[pre + "post_layernorm.bias"], eps)


def project(v, sd, cfg):
    vc = cfg["vision_config"]
    n, NP, C = v.shape
    P = vc["image_size"] // vc["patch_size"]
    t = int(cfg["mm_tokens_per_image"] ** 0.5)
    k = P // t
    g = v.reshape(n, t, k, t, k, C).mean(dim=(2, 4))  # k x k average pool over the P x P patch grid
    g = g.reshape(n, t * t, C)
    g = gemma_rms(g, sd["multi_modal_projector.mm_soft_emb_norm.weight"], vc.get("layer_norm_eps", 1e-6))
    return g @ sd["multi_modal_projector.mm_input_projection_weight"]


class Decoder:
    def __init__(self, sd, cfg):
        self.sd, self.tc = sd, cfg["text_config"]
        tc = self.tc
        self.nl = tc["num_hidden_layers"]
        self.hd = tc["head_dim"]
        self.nh, self.nkv = tc["num_attention_heads"], tc["num_key_value_heads"]
        self.sliding = [bool((i + 1) % tc["sliding_window_pattern"]) for i in range(self.nl)]
        self.W = tc["sliding_window"]
        exps = torch.arange(0, self.hd, 2, dtype=torch.int64).to(F32) / self.hd
        self.inv_local = 1.0 / (tc["rope_local_base_freq"] ** exps)
        inv_global = 1.0 / (tc["rope_theta"] ** exps)
        rs = tc.get("rope_scaling")
        if rs and rs.get("rope_type", rs.get("type")) == "linear":
            inv_global = inv_global / rs["factor"]
        self.inv_global = inv_global
        self.embed = sd["language_model.model.embed_tokens.weight"]
        self.lm_head = sd.get("language_model.lm_head.weight", self.embed)
        self.scale = torch.tensor(tc["hidden_size"] ** 0.5, dtype=F32)
        self.k_cache = [None] * self.nl
        self.v_cache = [None] * self.nl
        self.eps = tc["rms_norm_eps"]

    def rope(self, x, pos, inv):
        f = pos[:, None].to(F32) * inv[None, :]
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]  # broadcast over heads
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(self, emb, pos, allowed_fn):
        """emb [n, H] new tokens at positions pos; keys = cache + new; allowed_fn(layer, qpos, kpos) -> bool."""
        sd, tc = self.sd, self.tc
        h = emb
        for i in range(self.nl):
            L = f"language_model.model.layers.{i}."
            r = h
            x = gemma_rms(h, sd[L + "input_layernorm.weight"], self.eps)
            q = (x @ sd[L + "self_attn.q_proj.weight"].T).reshape(-1, self.nh, self.hd)
            k = (x @ sd[L + "self_attn.k_proj.weight"].T).reshape(-1, self.nkv, self.hd)
            v = (x @ sd[L + "self_attn.v_proj.weight"].T).reshape(-1, self.nkv, self.hd)
            q = gemma_rms(q, sd[L + "self_attn.q_norm.weight"], self.eps)
            k = gemma_rms(k, sd[L + "self_attn.k_norm.weight"], self.eps)
            inv = self.inv_local if self.sliding[i] else self.inv_global
            q, k = self.rope(q, pos, inv), self.rope(k, pos, inv)
            if self.k_cache[i] is not None:
                k = torch.cat([self.k_cache[i], k], 0)
                v = torch.cat([self.v_cache[i], v], 0)
            self.k_cache[i], self.v_cache[i] = k, v
            kpos = torch.arange(k.shape[0])
            rep = self.nh // self.nkv
            kk = k.repeat_interleave(rep, dim=1)
            vv = v.repeat_interleave(rep, dim=1)
            s = torch.einsum("qhd,khd->hqk", q, kk) * tc["query_pre_attn_scalar"] ** -0.5
            ok = allowed_fn(i, pos[:, None], kpos[None, :])
            s = s.masked_fill(~ok[None], float("-inf"))
            a = torch.einsum("hqk,khd->qhd", torch.softmax(s, -1), vv).reshape(-1, self.nh * self.hd)
            a = a @ sd[L + "self_attn.o_proj.weight"].T
            h = r + gemma_rms(a, sd[L + "post_attention_layernorm.weight"], self.eps)
            r = h
            x = gemma_rms(h, sd[L + "pre_feedforward_layernorm.weight"], self.eps)
            m = (gelu_tanh(x @ sd[L + "mlp.gate_proj.weight"].T) * (x @ sd[L + "mlp.up_proj.weight"].T)) @ sd[L + "mlp.down_proj.weight"].T
            h = r + gemma_rms(m, sd[L + "post_feedforward_layernorm.weight"], self.eps)
        h = gemma_rms(h, sd["language_model.model.norm.weight"], self.eps)
        logits = h @ self.lm_head.T
        fc = tc.get("final_logit_softcapping")
        if fc:
            logits = torch.tanh(logits / fc) * fc
        return logits


def run(case, model_dir, cdir, stop):
    cfg, sd, pre, proc, tok_cfg, _ = load_checkpoint(model_dir)
    bpe = IndependentGemmaBPE(os.path.join(model_dir, "tokenizer.json"))
    res = {}
    messages = case["messages"]
    rendered = render(messages)
    res["rendered_prompt_equal"] = rendered == case["rendered_prompt"]
    pngs = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for m in messages if not isinstance(m["content"], str)
            for p in m["content"] if p["type"] == "image_url"]
    ik = case.get("images_kwargs", {})
    pas = (256, 4, 1.2) if ik.get("do_pan_and_scan") else None  # the processor's defaults
    pix, crops = preprocess(pngs, pre, pas)
    expanded = expand(rendered, crops, proc["image_seq_length"]) if pngs else rendered
    ids = bpe.encode(expanded)
    res["prompt_ids_equal"] = ids == case["expected"]["prompt_token_ids"]
    image_id = cfg["image_token_index"]
    tt = [1 if t == image_id else 0 for t in ids]
    if pix is not None:
        gz = os.path.join(cdir, "pixel_values.safetensors.gz")
        ref = st_load(gzip.decompress(open(gz, "rb").read()))["pixel_values"] if os.path.exists(gz) else \
            load_file(os.path.join(cdir, "tensors.safetensors"))["pixel_values"]
        res["pixel_values_bit_identical"] = bool(torch.equal(pix, ref))
    with torch.no_grad():
        dec = Decoder(sd, cfg)
        x = dec.embed[torch.tensor(ids)] * dec.scale
        if pix is not None:
            feats = project(siglip(pix, sd, cfg["vision_config"]), sd, cfg).reshape(-1, cfg["text_config"]["hidden_size"])
            x[torch.tensor(tt, dtype=torch.bool)] = feats
        ttt = torch.tensor(tt, dtype=torch.bool)
        W = dec.W

        def allowed_prefill(i, qp, kp):
            ok = (kp <= qp) | (ttt[qp] & ttt[kp])
            return ok & (kp > qp - W) if dec.sliding[i] else ok

        def allowed_decode(i, qp, kp):
            ok = kp <= qp
            return ok & (kp > qp - W) if dec.sliding[i] else ok

        S = len(ids)
        logits = dec.forward(x, torch.arange(S), allowed_prefill)[-1]
        steps, out = [], []
        n_max = case["request_params"]["max_tokens"]
        for s in range(n_max):
            steps.append(logits)
            t = int(logits.argmax())
            out.append(t)
            if t in stop:
                break
            e = dec.embed[torch.tensor([t])] * dec.scale
            logits = dec.forward(e, torch.tensor([S + s]), allowed_decode)[-1]
    steps = torch.stack(steps)
    ref_steps = load_file(os.path.join(cdir, "tensors.safetensors"))["generate_step_logits"]
    res["greedy_ids_equal"] = out == case["expected"]["completion_token_ids"]
    res["max_abs_diff_step_logits"] = float((steps[:len(ref_steps)] - ref_steps).abs().max()) if len(out) == len(ref_steps) else None
    lp = torch.log_softmax(steps, -1)
    d = 0.0
    for st, top in zip(lp, case["expected"]["top_logprobs"]):
        d = max(d, max(abs(float(st[e["id"]]) - e["logprob"]) for e in top))
    res["max_abs_diff_top5_logprobs"] = d
    res["PASS"] = bool(res["rendered_prompt_equal"] and res["prompt_ids_equal"] and res.get("pixel_values_bit_identical", True)
                       and res["greedy_ids_equal"] and d < 1e-4)
    return res


def main():
    sets = [(os.path.join(GOLDEN, "gemma3"))] + [os.path.join(EXTRA, f) for f in sorted(os.listdir(EXTRA))
                                                  if f.startswith("gemma3") and os.path.isdir(os.path.join(EXTRA, f))]
    results, ok = {}, True
    for root in sets:
        cc = json.load(open(os.path.join(root, "chat_cases.json")))
        mdir = os.path.normpath(os.path.join(root, cc["model_dir"]))
        for case in cc["cases"]:
            r = run(case, mdir, os.path.join(root, case["dir"]), cc["generation"]["stop_token_ids"])
            key = f"{os.path.basename(root)}/{case['name']}"
            results[key] = r
            ok &= r["PASS"]
            print(key, json.dumps(r), flush=True)
    results["ALL_PASS"] = ok
    json.dump(results, open(os.path.join(HERE, "independent_port.json"), "w"), indent=1)
    print("ALL_PASS", ok)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
