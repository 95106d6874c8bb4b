"""What a decoder's forward pass is given, read the same way on every transformers release the project allows.

transformers 5.25 changed two things that hooks on the decoder see during `generate`:
- the KV cache arrives as `cache=` (it was `past_key_values=`; the old name still works as a deprecated alias on
  `generate` and `forward`, but the model passes the new name on to its inner modules);
- an attention mask with no padding in it (a single row, or rows of equal length) is dropped: the forward pass
  gets `attention_mask=None` instead of a 2-D mask of ones.

So nothing here trusts a keyword's name or a mask's presence: the cache is whatever argument is a transformers
`Cache` (its public `get_seq_length()` is the number of columns before this pass), and a missing mask means
"every position is real".

    cached = cached_length(kwargs)           # None when the pass has no cache (a whole sequence)
    name = cache_keyword(model)              # "cache" or "past_key_values", for calling forward / generate
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from transformers.cache_utils import Cache

# The cache's keyword on the releases the project allows, newest first.
CACHE_KEYWORDS: tuple[str, ...] = ("cache", "past_key_values")


def find_cache(kwargs: Mapping[str, Any]) -> Any | None:
    """The KV cache among a forward pass's keyword arguments, whatever its name; None when there is none."""

    return next((value for value in kwargs.values() if isinstance(value, Cache)), None)


def cached_length(kwargs: Mapping[str, Any]) -> int | None:
    """How many columns the cache holds before this forward pass writes to it; None without a cache."""
    cache = find_cache(kwargs)
    return None if cache is None else int(cache.get_seq_length())


def cache_keyword(model: Any) -> str:
    """The keyword under which `model.forward` / `model.generate` take a KV cache on the installed transformers."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    parameters = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(output: Any) -> Any | None:
    """The KV cache a forward pass returned (`cache` on 5.25 and later, `past_key_values` before)."""
    for name in CACHE_KEYWORDS:
        value = getattr(output, name, None)
        if value is not None:
            return value
    return None
