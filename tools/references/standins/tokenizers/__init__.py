"""Import-only stand-in for the Rust `tokenizers` package.

transformers 4.50 imports `tokenizers` at module level in a few integration files
(integrations/ggml.py via configuration_utils). This stand-in ships no dist-info, so
`transformers.utils.is_tokenizers_available()` stays False and only the pure-Python ("slow")
tokenizers are used. Any attempt to actually use these names raises.
"""


class _Unavailable:
    def __init__(self, *a, **k):
        raise RuntimeError("tokenizers stand-in: the Rust tokenizers library is not installed")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (_Unavailable,), {})
