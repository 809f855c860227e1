"""Minimal edits so transformers 4.50.0 imports and loads checkpoints on PyTorch 1.13.

None of them touches a computation:
  1. `import torch.distributed.tensor` (torch >= 2.5 module) guarded in modeling_utils.py and
     model_debugging_utils.py (only used for tensor parallelism / debugging).
  2. `load_state_dict(..., assign=...)` -> without `assign` (the keyword is torch >= 2.1), in both
     places of modeling_utils.py.
     Without accelerate the model is built on CPU with real (uninitialised) tensors, so the
     checkpoint values are copied into the existing float32 parameters (BF16 -> F32 upcast by copy_).
  3. The pure-Python `AddedToken` fallback (used when the Rust `tokenizers` package is absent)
     is a dataclass with eq=True and therefore unhashable; give it `__hash__` = hash(content), and the
     `__setstate__` that the slow tokenizer calls on it (tokenization_utils.py `_add_tokens`) and that
     the Rust AddedToken has (it updates the given attributes).
  4. integrations/flex_attention.py decorates with `torch.compiler.disable` (torch >= 2.1) at import
     time; on torch 1.13 that decorator is replaced by the identity (flex attention is never used:
     the reference runs eager attention).
  5. integrations/fsdp.py `is_fsdp_managed_module` (asked by `generate`): torch 1.13's
     torch.distributed.fsdp fails to import on Python 3.11 (a dataclass with a mutable default);
     an ImportError there now means "not FSDP-managed" (nothing here is FSDP).
  6. cache_utils.py calls `torch._dynamo.mark_static_address` (torch >= 2.1) when it builds a StaticCache /
     HybridCache (Gemma 3's generate uses HybridCache); that call only tags the zero-filled cache tensors for
     torch.compile / CUDA graphs, so on torch 1.13 it becomes a no-op.
"""
import sys, os

root = sys.argv[1]

def patch(rel, old, new, count=1):
    p = os.path.join(root, rel)
    s = open(p, encoding="utf-8").read()
    n = s.count(old)
    if n != count:
        raise SystemExit(f"{rel}: expected {count} occurrence(s) of {old!r}, found {n}")
    s = s.replace(old, new)
    open(p, "w", encoding="utf-8").write(s)
    print("patched", rel)

patch("modeling_utils.py", "import torch\nimport torch.distributed.tensor\n",
      "import torch\ntry:\n    import torch.distributed.tensor\nexcept ImportError:  # torch < 2.5\n    pass\n")
patch("model_debugging_utils.py", "    import torch\n    import torch.distributed.tensor\n",
      "    import torch\n    try:\n        import torch.distributed.tensor\n    except ImportError:  # torch < 2.5\n        pass\n")
patch("modeling_utils.py", "                    strict=False,\n                    assign=True,\n",
      "                    strict=False,\n")
patch("tokenization_utils_base.py",
      "        def __getstate__(self):\n            return self.__dict__\n\n        def __str__(self):\n            return self.content\n",
      "        def __getstate__(self):\n            return self.__dict__\n\n        def __str__(self):\n            return self.content\n\n        def __hash__(self):\n            return hash(self.content)\n\n"
      "        def __setstate__(self, state):\n            self.__dict__.update(state)\n")
patch("integrations/flex_attention.py", "import torch\n\nfrom ..utils import is_torch_flex_attn_available\n",
      "import torch\n\nfrom ..utils import is_torch_flex_attn_available\n\n"
      "if not hasattr(torch, \"compiler\"):  # torch < 2.1: import-time decorator only\n"
      "    import types as _types\n\n"
      "    torch.compiler = _types.SimpleNamespace(disable=lambda *a, **k: (lambda f: f), is_compiling=lambda: False)\n")
patch("modeling_utils.py", "model_to_load.load_state_dict(state_dict, strict=False, assign=assign_params)",
      "model_to_load.load_state_dict(state_dict, strict=False)")
patch("integrations/fsdp.py", "    import torch.distributed.fsdp\n\n    return isinstance(",
      "    try:\n        import torch.distributed.fsdp\n    except (ImportError, ValueError):  # torch 1.13 on Python 3.11\n"
      "        return getattr(module, \"_is_fsdp_managed_module\", False)\n\n    return isinstance(")
patch("cache_utils.py", "torch._dynamo.mark_static_address(", "_mark_static_address(", count=8)
patch("cache_utils.py", "\nlogger = logging.get_logger(__name__)\n",
      "\nlogger = logging.get_logger(__name__)\n\n"
      "# torch < 2.1 has no torch._dynamo.mark_static_address (a torch.compile / CUDA-graph tag only)\n"
      "_mark_static_address = getattr(getattr(torch, \"_dynamo\", None), \"mark_static_address\", lambda t: None)\n")
