"""timm.layers stand-in (see ../__init__.py). Each class follows timm 0.9.16's code for the arguments
siglip_vit.py passes; anything else raises."""
from typing import Callable, Optional, Type, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

LayerType = Union[str, Callable, Type[torch.nn.Module]]


def _pair(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


class PatchEmbed(nn.Module):
    """timm/layers/patch_embed.py PatchEmbed with flatten=True, output_fmt=None, norm_layer=None,
    strict_img_size=True: Conv2d(kernel=stride=patch) then x.flatten(2).transpose(1, 2)."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, norm_layer=None, flatten=True,
                 output_fmt=None, bias=True, strict_img_size=True, dynamic_img_pad=False):
        super().__init__()
        if norm_layer is not None or output_fmt is not None or not flatten:
            raise NotImplementedError("timm stand-in: PatchEmbed options not used by DeepSeek-VL2")
        self.patch_size = _pair(patch_size)
        self.img_size = _pair(img_size)
        self.grid_size = tuple(s // p for s, p in zip(self.img_size, self.patch_size))
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = True
        self.strict_img_size = strict_img_size
        self.dynamic_img_pad = dynamic_img_pad
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)
        self.norm = nn.Identity()

    def forward(self, x):
        B, C, H, W = x.shape
        if self.strict_img_size:
            assert H == self.img_size[0] and W == self.img_size[1], (H, W, self.img_size)
        if self.dynamic_img_pad:
            pad_h = (self.patch_size[0] - H % self.patch_size[0]) % self.patch_size[0]
            pad_w = (self.patch_size[1] - W % self.patch_size[1]) % self.patch_size[1]
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        x = x.flatten(2).transpose(1, 2)  # NCHW -> NLC
        return self.norm(x)


class Mlp(nn.Module):
    """timm/layers/mlp.py Mlp with use_conv=False, norm_layer=None: fc1 -> act -> drop -> fc2 -> drop."""

    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, norm_layer=None,
                 bias=True, drop=0.0, use_conv=False):
        super().__init__()
        if norm_layer is not None or use_conv:
            raise NotImplementedError("timm stand-in: Mlp options not used by DeepSeek-VL2")
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        bias = _pair(bias)
        drop = _pair(drop)
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias[0])
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop[0])
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias[1])
        self.drop2 = nn.Dropout(drop[1])

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop1(x)
        x = self.norm(x)
        x = self.fc2(x)
        return self.drop2(x)


class AttentionPoolLatent(nn.Module):
    """timm/layers/attention_pool.py AttentionPoolLatent (pos_embed='', latent_len=1, qk_norm=False,
    pool_type='token'). DeepSeek-VL2 builds it (global_pool='map') and loads its weights, but
    ignore_head=True means forward_head is never called. forward follows timm's non-fused path."""

    def __init__(self, in_features, out_features=None, embed_dim=None, num_heads=8, mlp_ratio=4.0, qkv_bias=True,
                 qk_norm=False, latent_len=1, latent_dim=None, pos_embed="", pool_type="token", norm_layer=None,
                 drop=0.0):
        super().__init__()
        if qk_norm or pos_embed:
            raise NotImplementedError("timm stand-in: AttentionPoolLatent options not used by DeepSeek-VL2")
        embed_dim = embed_dim or in_features
        out_features = out_features or in_features
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.pool = pool_type
        self.pos_embed = None
        self.latent_dim = latent_dim or embed_dim
        self.latent_len = latent_len
        self.latent = nn.Parameter(torch.zeros(1, self.latent_len, embed_dim))
        self.q = nn.Linear(embed_dim, embed_dim, bias=qkv_bias)
        self.kv = nn.Linear(embed_dim, embed_dim * 2, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(drop)
        self.norm = norm_layer(out_features) if norm_layer is not None else nn.Identity()
        self.mlp = Mlp(embed_dim, int(embed_dim * mlp_ratio))
        self.init_weights()  # siglip_vit.py replaces this method before construction

    def init_weights(self):
        nn.init.trunc_normal_(self.latent, std=self.latent_dim ** -0.5)

    def forward(self, x):
        B, N, C = x.shape
        q = self.q(self.latent.expand(B, -1, -1)).reshape(B, self.latent_len, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, self.latent_len, C)
        x = self.proj_drop(self.proj(x))
        x = x + self.mlp(self.norm(x))
        if self.pool == "token":
            x = x[:, 0]
        elif self.pool == "avg":
            x = x.mean(1)
        return x


def _unused(name):
    def f(*a, **k):
        raise NotImplementedError(f"timm stand-in: {name} is not on DeepSeek-VL2's inference path")
    f.__name__ = name
    return f


class DropPath(nn.Module):
    def __init__(self, *a, **k):
        raise NotImplementedError("timm stand-in: DropPath (drop_path_rate is 0 at inference)")


class PatchDropout(nn.Module):
    def __init__(self, *a, **k):
        raise NotImplementedError("timm stand-in: PatchDropout (patch_drop_rate is 0 at inference)")


resample_abs_pos_embed = _unused("resample_abs_pos_embed")
