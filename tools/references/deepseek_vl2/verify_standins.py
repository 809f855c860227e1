"""Checks the stand-ins in standins/ against the real libraries: timm 0.9.16 and einops 0.8.0, extracted from
their git mirrors (TIMM_GIT, EINOPS_GIT; the `fetch` mirrors by default) into /tmp/dsvl2-real. Compares
parameter names and shapes, and outputs on random inputs (exactly equal: the stand-ins run the same torch ops),
for PatchEmbed, Mlp (SigLIP's tanh GELU) and AttentionPoolLatent; the three einops patterns on random tensors;
xformers' memory_efficient_attention stand-in against an independent float64 softmax attention (xformers itself
needs CUDA kernels; its documented semantics are BMHK inputs, scale 1/sqrt(K), no mask). Writes
verify_standins.json.
"""
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = "/tmp/dsvl2-real"
TIMM_GIT = os.environ.get("TIMM_GIT", "/work/.mirror/huggingface+pytorch-image-models/repo")
EINOPS_GIT = os.environ.get("EINOPS_GIT", "/work/.mirror/arogozhnikov+einops/repo")
if not os.path.isdir(os.path.join(REAL, "timm")):
    os.makedirs(REAL, exist_ok=True)
    for git, tag, path in ((TIMM_GIT, "v0.9.16", "timm"), (EINOPS_GIT, "v0.8.0", "einops")):
        arch = subprocess.run(["git", "--git-dir", git, "archive", tag, path], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", REAL], input=arch, check=True)


def load(root):
    for m in [k for k in sys.modules if k.split(".")[0] in ("timm", "einops")]:
        del sys.modules[m]
    sys.path.insert(0, root)
    import einops
    import timm.layers as L
    sys.path.remove(root)
    return L, einops


torch.manual_seed(0)
res = {}
Ls, es = load(os.path.join(HERE, "standins"))
Lr, er = load(REAL)
res["versions"] = {"timm_real": sys.modules["timm"].__version__, "einops_real": er.__version__}
gelu = lambda: torch.nn.GELU(approximate="tanh")  # noqa: E731
norm = lambda d: torch.nn.LayerNorm(d, eps=1e-6)  # noqa: E731


def same_module(a, b, x, name):
    sa, sb = a.state_dict(), b.state_dict()
    names = sorted(sa) == sorted(sb) and all(sa[k].shape == sb[k].shape for k in sa)
    b.load_state_dict(sa)
    with torch.no_grad():
        eq = torch.equal(a(x), b(x))
    res[name] = {"parameter_names_and_shapes_equal": names, "outputs_equal": eq}


same_module(Ls.PatchEmbed(img_size=100, patch_size=14, in_chans=3, embed_dim=48, bias=True, dynamic_img_pad=False),
            Lr.PatchEmbed(img_size=100, patch_size=14, in_chans=3, embed_dim=48, bias=True, dynamic_img_pad=False),
            torch.randn(3, 3, 100, 100), "PatchEmbed")
same_module(Ls.Mlp(in_features=48, hidden_features=179, act_layer=gelu, drop=0.0),
            Lr.Mlp(in_features=48, hidden_features=179, act_layer=gelu, drop=0.0), torch.randn(2, 49, 48), "Mlp")
same_module(Ls.AttentionPoolLatent(48, num_heads=4, mlp_ratio=3.7362, norm_layer=norm),
            Lr.AttentionPoolLatent(48, num_heads=4, mlp_ratio=3.7362, norm_layer=norm), torch.randn(2, 49, 48),
            "AttentionPoolLatent")
x = torch.randn(6, 16, 5)
d = torch.randn(5)
res["einops"] = {
    "(th tw) (h w) d -> (th h) (tw w) d": torch.equal(es.rearrange(x, "(th tw) (h w) d -> (th h) (tw w) d", th=2, tw=3, h=4, w=4),
                                                      er.rearrange(x, "(th tw) (h w) d -> (th h) (tw w) d", th=2, tw=3, h=4, w=4)),
    "d -> h 1 d": torch.equal(es.repeat(d, "d -> h 1 d", h=4), er.repeat(d, "d -> h 1 d", h=4)),
    "d -> (th h) 1 d": torch.equal(es.repeat(d, "d -> (th h) 1 d", th=3, h=4), er.repeat(d, "d -> (th h) 1 d", th=3, h=4)),
}
sys.path.insert(0, os.path.join(HERE, "standins"))
from xformers.ops import memory_efficient_attention  # noqa: E402
q, k, v = torch.randn(3, 49, 4, 12), torch.randn(3, 49, 4, 12), torch.randn(3, 49, 4, 12)
qd, kd, vd = (t.double().transpose(1, 2) for t in (q, k, v))
ref = torch.softmax(qd @ kd.transpose(-1, -2) / 12 ** 0.5, -1) @ vd
res["xformers_memory_efficient_attention_max_abs_diff_vs_float64"] = float((memory_efficient_attention(q, k, v) - ref.transpose(1, 2)).abs().max())
ok = all(v for r in (res["PatchEmbed"], res["Mlp"], res["AttentionPoolLatent"], res["einops"]) for v in r.values()) \
    and res["xformers_memory_efficient_attention_max_abs_diff_vs_float64"] < 1e-5
res["ALL_PASS"] = ok
json.dump(res, open(os.path.join(HERE, "verify_standins.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
sys.exit(0 if ok else 1)
