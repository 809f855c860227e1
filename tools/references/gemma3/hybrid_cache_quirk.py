"""transformers 4.50 generate() with Gemma 3's HybridCache when the prompt is SHORTER than sliding_window.

Shows (and explains exactly) that the cached decode then departs from the model's own full forward from the
query position sliding_window - 1 on: HybridCache._sliding_update rolls the W-slot sliding buffer left as soon
as the write position reaches W - 1, although only W - 1 slots are filled; position 0's key/value is dropped one
step early and an all-zero slot stays in the window (the decode mask allows every slot), until it rolls out.
The hidden states computed meanwhile also enter the global layers' caches, so every later step differs.

Method: run generate() on gemma3_sliding (W = 10) and gemma3_bf16 (W = 24) with short prompts; recompute the same
tokens with the full model (no cache); run independent_port.Decoder (a) with the correct window j > p - W and
(b) with an emulation of the slot buffer described above. (a) must match the full forward, (b) must match
generate(). Writes hybrid_cache_quirk.json here."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3lib  # noqa: E402
import independent_port as ip  # noqa: E402


class SlotDecoder(ip.Decoder):
    """Decoder whose sliding layers keep HybridCache's W-slot buffer (emulated), global layers a full cache."""

    def __init__(self, sd, cfg):
        super().__init__(sd, cfg)
        self.slots = {}  # layer -> (K [W, kv, hd], V, slot_valid)

    def forward_slots(self, emb, pos):
        sd, tc, W = self.sd, self.tc, self.W
        h = emb
        p_last = int(pos[-1])
        n = emb.shape[0]
        for i in range(self.nl):
            L = f"language_model.model.layers.{i}."
            r = h
            x = ip.gemma_rms(h, sd[L + "input_layernorm.weight"], self.eps)
            q = (x @ sd[L + "self_attn.q_proj.weight"].T).reshape(-1, self.nh, self.hd)
            k = (x @ sd[L + "self_attn.k_proj.weight"].T).reshape(-1, self.nkv, self.hd)
            v = (x @ sd[L + "self_attn.v_proj.weight"].T).reshape(-1, self.nkv, self.hd)
            q = ip.gemma_rms(q, sd[L + "self_attn.q_norm.weight"], self.eps)
            k = ip.gemma_rms(k, sd[L + "self_attn.k_norm.weight"], self.eps)
            inv = self.inv_local if self.sliding[i] else self.inv_global
            q, k = self.rope(q, pos, inv), self.rope(k, pos, inv)
            if not self.sliding[i]:
                if self.k_cache[i] is not None:
                    k = torch.cat([self.k_cache[i], k], 0)
                    v = torch.cat([self.v_cache[i], v], 0)
                self.k_cache[i], self.v_cache[i] = k, v
                kk, vv = k, v
                ok = torch.arange(k.shape[0])[None, :] <= pos[:, None]
            else:
                if i not in self.slots:
                    self.slots[i] = (torch.zeros(W, self.nkv, self.hd), torch.zeros(W, self.nkv, self.hd))
                K, V = self.slots[i]
                if n > W:  # prefill longer than the window: attend over the full prompt, keep the last W
                    kk, vv = k, v
                    ok = (torch.arange(n)[None, :] <= pos[:, None]) & (torch.arange(n)[None, :] > pos[:, None] - W)
                    self.slots[i] = (k[-W:].clone(), v[-W:].clone())
                else:
                    cpos = pos.clamp(0, W - 1)
                    if int(pos[-1]) >= W - 1:  # HybridCache rolls left by one as soon as the LAST position >= W - 1
                        K, V = torch.roll(K, -1, 0), torch.roll(V, -1, 0)
                    K, V = K.clone(), V.clone()
                    K[cpos], V[cpos] = k, v
                    self.slots[i] = (K, V)
                    kk, vv = K, V
                    # decode mask: absolute columns [offset, offset + W) applied to the slots
                    offset = max(0, p_last + 1 - W) if n == 1 else 0
                    cols = offset + torch.arange(W)
                    ok = cols[None, :] <= pos[:, None]
                    if n > 1:  # prefill S <= W: causal + window on slot = position
                        ok = ok & (cols[None, :] > pos[:, None] - W)
            rep = self.nh // self.nkv
            kk2, vv2 = kk.repeat_interleave(rep, dim=1), vv.repeat_interleave(rep, dim=1)
            s = torch.einsum("qhd,khd->hqk", q, kk2) * tc["query_pre_attn_scalar"] ** -0.5
            s = s.masked_fill(~ok[None], float("-inf"))
            a = torch.einsum("hqk,khd->qhd", torch.softmax(s, -1), vv2).reshape(-1, self.nh * self.hd)
            a = a @ sd[L + "self_attn.o_proj.weight"].T
            h = r + ip.gemma_rms(a, sd[L + "post_attention_layernorm.weight"], self.eps)
            r = h
            x = ip.gemma_rms(h, sd[L + "pre_feedforward_layernorm.weight"], self.eps)
            m = (ip.gelu_tanh(x @ sd[L + "mlp.gate_proj.weight"].T) * (x @ sd[L + "mlp.up_proj.weight"].T)) @ sd[L + "mlp.down_proj.weight"].T
            h = r + ip.gemma_rms(m, sd[L + "post_feedforward_layernorm.weight"], self.eps)
        h = ip.gemma_rms(h, sd["language_model.model.norm.weight"], self.eps)
        return h @ self.lm_head.T


def teacher_forced(dec, ids, comp, slots):
    """Step logits for the given tokens: prefill on ids, then feed comp[:-1] one at a time."""
    S = len(ids)
    x = dec.embed[torch.tensor(ids)] * dec.scale
    W = dec.W

    def allowed(i, qp, kp):
        ok = kp <= qp
        return ok & (kp > qp - W) if dec.sliding[i] else ok
    out = [(dec.forward_slots(x, torch.arange(S)) if slots else dec.forward(x, torch.arange(S), allowed))[-1]]
    for s, t in enumerate(comp[:-1]):
        e = dec.embed[torch.tensor([t])] * dec.scale
        p = torch.tensor([S + s])
        out.append((dec.forward_slots(e, p) if slots else dec.forward(e, p, allowed))[-1])
    return torch.stack(out)


def main():
    res = {}
    for name, prompt_len in [("gemma3_sliding", 6), ("gemma3_sliding", 9), ("gemma3_sliding", 10), ("gemma3_bf16", 15)]:
        mdir = os.path.join(g3lib.EXTRA, name, "model")
        model, proc = g3lib.load(mdir)
        cfg, sd, *_ = ip.load_checkpoint(mdir)
        W = cfg["text_config"]["sliding_window"]
        ids = proc.tokenizer("<bos><start_of_turn>user\nHi, how are you?", add_special_tokens=False)["input_ids"][:prompt_len]
        t = torch.tensor([ids])
        with torch.no_grad():
            g = model.generate(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=torch.zeros_like(t),
                               max_new_tokens=3 * W, min_new_tokens=3 * W, do_sample=False, eos_token_id=[1, 6], pad_token_id=0,
                               output_logits=True, return_dict_in_generate=True, temperature=None, top_p=None, top_k=None)
            comp = g.sequences[0, len(ids):].tolist()
            gen_steps = torch.stack([lg[0] for lg in g.logits])
            full = torch.cat([t, torch.tensor([comp[:-1]])], 1)
            nocache = model(input_ids=full, attention_mask=torch.ones_like(full), token_type_ids=torch.zeros_like(full),
                            use_cache=False).logits[0, len(ids) - 1:]
            correct = teacher_forced(ip.Decoder(sd, cfg), ids, comp, slots=False)
            emulated = teacher_forced(SlotDecoder(sd, cfg), ids, comp, slots=True)
        dq = (gen_steps - nocache).abs().amax(-1)
        first = next((s for s in range(len(comp)) if dq[s] > 1e-4), None)
        r = {
            "sliding_window": W, "prompt_tokens": len(ids), "generated": len(comp),
            "first_step_where_generate_departs_from_full_forward": first,
            "its_query_position": None if first is None else len(ids) + first - 1,
            "max_abs_diff_generate_vs_full_forward": float(dq.max()),
            "max_abs_diff_correct_window_port_vs_full_forward": float((correct - nocache).abs().max()),
            "max_abs_diff_slot_emulation_vs_generate": float((emulated - gen_steps).abs().max()),
        }
        res[f"{name}_prompt{len(ids)}"] = r
        print(name, json.dumps(r), flush=True)
    json.dump(res, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hybrid_cache_quirk.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
