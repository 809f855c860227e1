"""xformers.ops.memory_efficient_attention stand-in.

xformers documents `memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None)` with
inputs in BMHK layout ([batch, seq, heads, head_dim]), output [batch, seq_q, heads, head_dim_v], and
`scale` defaulting to 1 / sqrt(query.shape[-1]); without attn_bias every query attends to every key
(no causal mask). That is plain softmax attention, computed here in float32 on the CPU:
  out = softmax((q * scale) @ k^T, dim=-1) @ v   (per batch and head)
siglip_vit.Attention calls it with p=0 at inference (dropout off).
"""
import math

import torch


def memory_efficient_attention(query, key, value, attn_bias=None, p=0.0, scale=None, **kwargs):
    if attn_bias is not None or p != 0.0 or kwargs:
        raise NotImplementedError("xformers stand-in: only attn_bias=None, p=0")
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    q = query.transpose(1, 2)  # B H M K
    k = key.transpose(1, 2)
    v = value.transpose(1, 2)
    attn = torch.matmul(q * scale, k.transpose(-2, -1)).softmax(dim=-1)
    return torch.matmul(attn, v).transpose(1, 2)  # B M H Kv
