"""Stand-in for `xformers`: only `xformers.ops.memory_efficient_attention` without a bias (see ops.py)."""
