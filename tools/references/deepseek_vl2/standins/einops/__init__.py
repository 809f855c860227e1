"""Stand-in for the three `einops` patterns DeepSeek-VL2 uses (modeling_deepseek_vl_v2.py,
DeepseekVLV2ForCausalLM.prepare_inputs_embeds). Each is the explicit reshape/permute einops performs;
any other pattern raises. `verify_standins.py` compares them with the real einops 0.8.0.

  rearrange(x, "(th tw) (h w) d -> (th h) (tw w) d", th, tw, h, w)
      x.view(th, tw, h, w, d).permute(0, 2, 1, 3, 4).reshape(th*h, tw*w, d)   (tiles side by side)
  repeat(v, "d -> h 1 d", h)             v[None, None, :].expand(h, 1, d)
  repeat(v, "d -> (th h) 1 d", th, h)    v[None, None, :].expand(th*h, 1, d)
"""
__version__ = "0.8.0-standin"


def _norm(p):
    return " ".join(p.split())


def rearrange(x, pattern, **axes):
    if _norm(pattern) == "(th tw) (h w) d -> (th h) (tw w) d":
        th, tw, h, w = axes["th"], axes["tw"], axes["h"], axes["w"]
        d = x.shape[-1]
        assert x.shape[0] == th * tw and x.shape[1] == h * w
        return x.reshape(th, tw, h, w, d).permute(0, 2, 1, 3, 4).reshape(th * h, tw * w, d)
    raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")


def repeat(x, pattern, **axes):
    p = _norm(pattern)
    if p == "d -> h 1 d":
        n = axes["h"]
    elif p == "d -> (th h) 1 d":
        n = axes["th"] * axes["h"]
    else:
        raise NotImplementedError(f"einops stand-in: pattern {pattern!r}")
    assert x.dim() == 1
    return x[None, None, :].expand(int(n), 1, x.shape[0])
