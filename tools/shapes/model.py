"""Qwen2.5-VL in plain PyTorch (1.13), written for this tool.

Parameter names are the released Hugging Face ones, so `state_dict()` is the checkpoint.
Computes what transformers' Qwen2_5_VLForConditionalGeneration computes (float32, eager):
  - vision: Conv3d patch embed (as a matmul), blocks of RMSNorm(1e-6) + attention with a 2D
    rotary table (theta 10000 over head_dim/2, rows then columns, merge-block order) over
    windows (window_size // merge // patch units a side) or whole images (fullatt blocks),
    gated-SiLU MLP with biases; merger = RMSNorm + Linear/GELU(erf)/Linear; window order undone.
  - text: Qwen2 decoder (q/k/v biases, GQA) with M-RoPE (sections t, h, w in rotate-half layout),
    positions as get_rope_index computes them.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


# ------------------------------------------------------------------ vision

class VisionAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)


class GatedMLP(nn.Module):
    """down(silu(gate(x)) * up(x)): the vision blocks' MLP (with biases) and the decoder's (without)."""

    def __init__(self, dim, inner, bias):
        super().__init__()
        self.gate_proj = nn.Linear(dim, inner, bias=bias)
        self.up_proj = nn.Linear(dim, inner, bias=bias)
        self.down_proj = nn.Linear(inner, dim, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class VisionBlock(nn.Module):
    def __init__(self, dim, heads, inner):
        super().__init__()
        self.norm1 = RMSNorm(dim, 1e-6)
        self.norm2 = RMSNorm(dim, 1e-6)
        self.attn = VisionAttention(dim, heads)
        self.mlp = GatedMLP(dim, inner, bias=True)


class PatchEmbed(nn.Module):
    def __init__(self, cin, t, p, dim):
        super().__init__()
        self.proj = nn.Module()
        self.proj.weight = nn.Parameter(torch.empty(dim, cin, t, p, p))


class Merger(nn.Module):
    def __init__(self, dim, unit, out):
        super().__init__()
        self.ln_q = RMSNorm(dim, 1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim * unit, dim * unit), nn.GELU(), nn.Linear(dim * unit, out))


def segments(bounds, n, device=None):
    """Padded gather rows for attention over [a, b) ranges: (gather [S, L], pad mask [S, 1, 1, L], ungather [n])."""
    ranges = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    L = max(b - a for a, b in ranges)
    gather = np.zeros((len(ranges), L), np.int64)
    valid = np.zeros((len(ranges), L), bool)
    ungather = np.zeros(n, np.int64)
    for s, (a, b) in enumerate(ranges):
        gather[s, : b - a] = np.arange(a, b)
        gather[s, b - a:] = a
        valid[s, : b - a] = True
        ungather[a:b] = s * L + np.arange(b - a)
    mask = np.where(valid, 0.0, torch.finfo(torch.float32).min).astype(np.float32)[:, None, None, :]
    return torch.from_numpy(gather), torch.from_numpy(mask), torch.from_numpy(ungather)


def vision_layout(grids, vc):
    """Window order of merged units, window bounds, full-attention bounds and rotary angles."""
    merge, patch = vc["spatial_merge_size"], vc["patch_size"]
    unit = merge * merge
    vws = vc["window_size"] // merge // patch
    head_dim = vc["hidden_size"] // vc["num_heads"]
    # rotary table: inv_freq over head_dim/2 with theta 10000, as the reference (float32)
    dim = head_dim // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    pos = []
    index, wb, fb = [], [0], [0]
    base = 0
    for t, h, w in grids:
        hh = np.arange(h)[:, None].repeat(w, 1).reshape(h // merge, merge, w // merge, merge).transpose(0, 2, 1, 3).reshape(-1)
        ww = np.arange(w)[None, :].repeat(h, 0).reshape(h // merge, merge, w // merge, merge).transpose(0, 2, 1, 3).reshape(-1)
        pos.append(np.tile(np.stack([hh, ww], -1), (t, 1)))
        lh, lw = h // merge, w // merge
        nwh, nww = -(-lh // vws), -(-lw // vws)
        for f in range(t):
            for wy in range(nwh):
                for wx in range(nww):
                    cnt = 0
                    for y in range(wy * vws, min((wy + 1) * vws, lh)):
                        for x in range(wx * vws, min((wx + 1) * vws, lw)):
                            index.append(base + f * lh * lw + y * lw + x)
                            cnt += 1
                    wb.append(wb[-1] + cnt * unit)
            fb.append(fb[-1] + h * w)
        base += t * lh * lw
    pos = torch.from_numpy(np.concatenate(pos)).long()
    freqs = torch.outer(torch.arange(int(pos.max()) + 1, dtype=torch.float), inv_freq)
    rot = freqs[pos].flatten(1)  # [N, head_dim/2]: row angles then column angles
    index = torch.tensor(index, dtype=torch.long)
    return {"index": index, "win_bounds": wb, "full_bounds": fb, "rot": rot}


class VisionTower(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vc = vc
        C = vc["hidden_size"]
        self.patch_embed = PatchEmbed(vc["in_chans"], vc["temporal_patch_size"], vc["patch_size"], C)
        self.blocks = nn.ModuleList([VisionBlock(C, vc["num_heads"], vc["intermediate_size"]) for _ in range(vc["depth"])])
        unit = vc["spatial_merge_size"] ** 2
        self.merger = Merger(C, unit, vc["out_hidden_size"])

    def forward(self, pixel_values, grids):
        vc = self.vc
        C, H = vc["hidden_size"], vc["num_heads"]
        D = C // H
        unit = vc["spatial_merge_size"] ** 2
        lay = vision_layout(grids, vc)
        N = pixel_values.shape[0]
        x = pixel_values @ self.patch_embed.proj.weight.reshape(C, -1).t()
        idx = lay["index"]
        x = x.reshape(N // unit, unit, C)[idx].reshape(N, C)
        rot = lay["rot"].reshape(N // unit, unit, -1)[idx].reshape(N, -1)
        emb = torch.cat([rot, rot], -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        segs = {"win": segments(lay["win_bounds"], N), "full": segments(lay["full_bounds"], N)}
        full_idx = set(vc["fullatt_block_indexes"])
        for i, blk in enumerate(self.blocks):
            gather, mask, ungather = segs["full" if i in full_idx else "win"]
            h = blk.norm1(x)
            qkv = blk.attn.qkv(h).reshape(N, 3, H, D)
            q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            qb, kb, vb = (z[gather].transpose(1, 2) for z in (q, k, v))  # [S, H, L, D]
            if self.training:  # cheaper: scale the queries, not the scores
                scores = (qb * (1 / math.sqrt(D))) @ kb.transpose(-1, -2) + mask
            else:  # as the reference: (q k^T) * scale
                scores = qb @ kb.transpose(-1, -2) * (1 / math.sqrt(D)) + mask
            o = torch.softmax(scores, -1) @ vb
            o = o.transpose(1, 2).reshape(-1, C)[ungather]
            x = x + blk.attn.proj(o)
            x = x + blk.mlp(blk.norm2(x))
        m = self.merger.ln_q(x).reshape(-1, unit * C)
        out = self.merger.mlp(m)
        return out[torch.argsort(idx)]


# ------------------------------------------------------------------ text

class Attention(nn.Module):
    def __init__(self, hd, heads, kv, head_dim):
        super().__init__()
        self.q_proj = nn.Linear(hd, heads * head_dim, bias=True)
        self.k_proj = nn.Linear(hd, kv * head_dim, bias=True)
        self.v_proj = nn.Linear(hd, kv * head_dim, bias=True)
        self.o_proj = nn.Linear(heads * head_dim, hd, bias=False)


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hd, hn = cfg["hidden_size"], cfg["num_attention_heads"]
        self.self_attn = Attention(hd, hn, cfg["num_key_value_heads"], hd // hn)
        self.mlp = GatedMLP(hd, cfg["intermediate_size"], bias=False)
        self.input_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(hd, cfg["rms_norm_eps"])


class TextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"])])
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


def rope_index(ids, grids, image_token_id, merge):
    """get_rope_index for one sequence of still images: [3, L] positions and rope delta."""
    n = len(ids)
    pos = np.zeros((3, n), np.int64)
    nxt, i, k = 0, 0, 0
    while i < n:
        if ids[i] == image_token_id:
            t, h, w = grids[k]
            lh, lw = h // merge, w // merge
            cnt = t * lh * lw
            yy = np.repeat(np.arange(lh), lw)
            xx = np.tile(np.arange(lw), lh)
            pos[0, i:i + cnt] = nxt
            pos[1, i:i + cnt] = nxt + np.tile(yy, t)
            pos[2, i:i + cnt] = nxt + np.tile(xx, t)
            nxt = int(pos[:, i:i + cnt].max()) + 1
            i += cnt
            k += 1
        else:
            pos[:, i] = nxt
            nxt += 1
            i += 1
    return pos, nxt - n


class Qwen25VL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTower(cfg["vision_config"])
        self.model = TextModel(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self.register_buffer("inv_freq", inv, persistent=False)
        sec = cfg["rope_scaling"]["mrope_section"]
        axes = []
        for a, c in enumerate(sec):
            axes += [a] * c
        self.register_buffer("axes", torch.tensor(axes + axes), persistent=False)

    def init_weights(self, std=0.02):
        for name, p in self.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "layernorm" in name or name.endswith("norm.weight") or "ln_q" in name:
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, std)
        # smaller init for residual outputs
        nl = self.cfg["num_hidden_layers"]
        for l in self.model.layers:
            nn.init.normal_(l.self_attn.o_proj.weight, 0.0, std / math.sqrt(2 * nl))
            nn.init.normal_(l.mlp.down_proj.weight, 0.0, std / math.sqrt(2 * nl))
        vd = self.cfg["vision_config"]["depth"]
        for b in self.visual.blocks:
            nn.init.normal_(b.attn.proj.weight, 0.0, std / math.sqrt(2 * vd))
            nn.init.normal_(b.mlp.down_proj.weight, 0.0, std / math.sqrt(2 * vd))

    def rope(self, positions):
        """positions [3, B, L] -> cos, sin [B, 1, L, head_dim] (M-RoPE, rotate-half layout)."""
        freqs = positions.float()[..., None] * self.inv_freq  # [3, B, L, half]
        emb = torch.cat([freqs, freqs], -1)  # [3, B, L, D]
        D = emb.shape[-1]
        sel = emb.gather(0, self.axes.view(1, 1, 1, D).expand(1, *emb.shape[1:])).squeeze(0)
        return sel.cos()[:, None], sel.sin()[:, None]

    def embed(self, input_ids, image_embeds):
        x = self.model.embed_tokens(input_ids)
        if image_embeds is not None and image_embeds.shape[0] > 0:
            m = input_ids == self.cfg["image_token_id"]
            x = x.masked_scatter(m[..., None].expand_as(x), image_embeds.to(x.dtype))
        return x

    def decoder(self, x, positions, pad_mask=None, tap=None):
        """x [B, L, hd], positions [3, B, L]; causal attention; returns final-normed hidden states,
        and with tap=i also the residual stream after layer i (for a training probe)."""
        cfg = self.cfg
        B, L, _ = x.shape
        Hn, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D = cfg["hidden_size"] // Hn
        cos, sin = self.rope(positions)
        mask = torch.full((L, L), torch.finfo(torch.float32).min).triu(1)[None, None]  # [1, 1, L, L]
        if pad_mask is not None:  # [B, L] True for real tokens (keys)
            mask = mask + torch.where(pad_mask, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]
            mask = mask.clamp(min=torch.finfo(torch.float32).min)
        tapped = None
        for i, layer in enumerate(self.model.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(B, L, Hn, D).transpose(1, 2)
            k = a.k_proj(h).view(B, L, KV, D).transpose(1, 2)
            v = a.v_proj(h).view(B, L, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = Hn // KV
            # query heads grouped by the KV head they share (head j uses KV head j // rep)
            qg = q.reshape(B, KV, rep * L, D) if not self.training else (q * (1 / math.sqrt(D))).reshape(B, KV, rep * L, D)
            s = (qg @ k.transpose(-1, -2)).reshape(B, KV, rep, L, L)
            if not self.training:
                s = s * (1 / math.sqrt(D))
            s = s + mask[:, :, None]
            o = (torch.softmax(s, -1).reshape(B, KV, rep * L, L) @ v).reshape(B, Hn, L, D)
            o = o.transpose(1, 2).reshape(B, L, Hn * D)
            x = x + a.o_proj(o)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            if i == tap:
                tapped = x
        return self.model.norm(x) if tap is None else (self.model.norm(x), tapped)

    def forward(self, input_ids, positions, pixel_values=None, grids=None, pad_mask=None):
        emb = self.visual(pixel_values, grids) if grids else None
        x = self.embed(input_ids, emb)
        return self.lm_head(self.decoder(x, positions, pad_mask))


# ------------------------------------------------------------------ greedy decoding (no cache, for references)

@torch.no_grad()
def greedy(model, ids, pixel_values, grids, n_new, stop_ids=()):
    cfg = model.cfg
    merge = cfg["vision_config"]["spatial_merge_size"]
    emb = model.visual(pixel_values, grids) if grids else None
    pos, delta = rope_index(ids, grids or [], cfg["image_token_id"], merge)
    out, all_logits = [], []
    cur = list(ids)
    for step in range(n_new):
        n = len(cur)
        p = np.concatenate([pos, np.tile(np.arange(len(ids), n) + delta, (3, 1))], 1)
        x = model.embed(torch.tensor([cur]), emb)
        logits = model.lm_head(model.decoder(x, torch.from_numpy(p)[:, None]))[0, -1]
        all_logits.append(logits)
        t = int(logits.argmax())
        out.append(t)
        cur.append(t)
        if t in stop_ids:
            break
    return out, all_logits
