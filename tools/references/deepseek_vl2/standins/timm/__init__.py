"""Stand-in for the parts of `timm` (>= 0.9.16) that DeepSeek-VL2's `siglip_vit.py` imports.

Only what the reference computation reaches is implemented, with timm's module and parameter names
so that the released checkpoints load without missing or unexpected keys:
  * `timm.layers.PatchEmbed` (Conv2d patchify, flatten NCHW -> NLC, no norm),
  * `timm.layers.Mlp` (fc1 -> act -> fc2; dropout 0),
  * `timm.layers.AttentionPoolLatent` (the "map" head; built and loaded, never run: the model sets
    ignore_head=True),
  * import-only names that the code path never calls (DropPath, PatchDropout, resample_abs_pos_embed,
    named_apply, checkpoint_seq, adapt_input_conv) raise if called.
`verify_standins.py` checks them against the real timm 0.9.16 source, numerically and by parameter names.
"""
__version__ = "0.9.16-standin"
