"""timm.models._manipulate stand-in: import-only (weight_init='skip', no gradient checkpointing)."""
from timm.layers import _unused

named_apply = _unused("named_apply")
checkpoint_seq = _unused("checkpoint_seq")
adapt_input_conv = _unused("adapt_input_conv")
