"""What the MiniCPM-V 2.6 remote code needs beyond transformers 4.50 + PyTorch 1.13. None of it changes a
computation the reference makes:

  1. `torch.nn.functional._none_or_dtype` (torch >= 2.0). resampler.py's MultiheadAttention.forward calls
     `F._none_or_dtype(attn_mask)` only to pass a dtype to a warning check in `_canonical_mask` (the file's own
     copy). It is added with torch 2.0's meaning: None -> None, a Tensor -> its dtype, anything else -> RuntimeError
     (resampler.py itself defines the same function under that name, which is what we install).
  2. `torchvision`: modeling_minicpmv.py does `import torchvision` and never uses it; an empty module stands in.
  3. The tokenizer. tokenization_minicpmv_fast.MiniCPMVTokenizerFast derives from Qwen2TokenizerFast, which needs
     the Rust `tokenizers` package (transformers 4.50 does not even export the name without it). While that file is
     imported, `transformers.models.qwen2.Qwen2TokenizerFast` is bound to the pure-Python Qwen2Tokenizer, so the
     remote class is used unchanged on the slow base: vocab.json + merges.txt + the added tokens of
     tokenizer_config.json, NFC normalisation and the same pre-tokenizer regex as tokenizer.json. The prompt ids are
     also checked against an independent reading of tokenizer.json (common.py).
"""
import sys
import types

import torch
import torch.nn.functional as F


def install_torch_none_or_dtype():
    if hasattr(F, "_none_or_dtype"):
        return

    def _none_or_dtype(input):  # torch 2.0 torch/nn/functional.py
        if input is None:
            return None
        elif isinstance(input, torch.Tensor):
            return input.dtype
        raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")

    F._none_or_dtype = _none_or_dtype


def install_torchvision_stub():
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            sys.modules["torchvision"] = types.ModuleType("torchvision")


def install():
    install_torch_none_or_dtype()
    install_torchvision_stub()


def import_tokenizer_module(name):
    """Imports the remote tokenization file with Qwen2TokenizerFast bound to the slow Qwen2Tokenizer (see 3.)."""
    import importlib

    import transformers.models.qwen2 as q2
    from transformers import Qwen2Tokenizer

    had = "Qwen2TokenizerFast" in vars(q2)
    old = vars(q2).get("Qwen2TokenizerFast")
    setattr(q2, "Qwen2TokenizerFast", Qwen2Tokenizer)
    try:
        return importlib.import_module(name)
    finally:
        if had:
            setattr(q2, "Qwen2TokenizerFast", old)
        else:
            delattr(q2, "Qwen2TokenizerFast")
