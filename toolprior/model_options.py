"""The names a config may give for how a model loads (no torch here, so a config is checked without loading it):
the compute dtypes and the weight quantisation. `toolprior.modeling` maps them to torch."""

from __future__ import annotations

DTYPE_NAMES: tuple[str, ...] = ("float32", "bfloat16", "float16")
# How a base model's weights can be loaded: as they are, or 4-bit NF4 with double quantisation (QLoRA).
QUANTIZE: tuple[str, ...] = ("none", "nf4")
