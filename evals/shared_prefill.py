"""One prefill for prompts that repeat inside a batch (an alpha sweep repeats every case once per alpha).

When steering cannot touch the prompt (positions "generated", or "from_decision" with no decision point inside the
prompt, or no steering at all), rows with the same prompt have the same KV cache. `shared_prefill` runs the
prompt (all but its last token) once per distinct row and copies the cache to every row that repeats it; `generate`
then continues from there, so a sweep over 8 alphas prefills its cases once instead of 8 times. Where the copies
sit side by side in equal groups and the model's attention allows it, the cache keeps one copy of each prompt and
decoding reads it once per group (evals.shared_prefix_attention); otherwise every row gets its own copy. The last prompt
token is left to `generate` (it must see at least one new token, and the steering context sees that forward).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from toolprior.evals.global_attention import supports_shared_prefix
from toolprior.evals.shared_prefix_attention import group_size, to_shared_prefix
from toolprior.forward_contract import output_cache


def left_padded_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, as transformers' `generate` computes them (padding gets 1)."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def distinct_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the distinct rows of the batch as [ids | mask], [U, 2W]; each row's index among them, [B])."""
    rows = torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1)
    return torch.unique(rows, dim=0, return_inverse=True)


def shared_prefill(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any | None:
    """A KV cache of every row's prompt minus its last token, computed once per distinct (ids, mask) row; None when
    no row repeats another, the prompt is a single token, or the model's cache cannot be copied between rows (then
    `generate` prefills as usual)."""
    if input_ids.shape[1] < 2:
        return None
    unique, inverse = distinct_rows(input_ids, attention_mask)
    if unique.shape[0] == input_ids.shape[0]:
        return None
    width = input_ids.shape[1]
    ids, mask = unique[:, : width - 1], unique[:, width : 2 * width - 1]
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=left_padded_position_ids(mask),
            use_cache=True,
            logits_to_keep=1,
        )
    cache = output_cache(out)
    if cache is None or not copyable(cache):
        return None
    inverse = inverse.to(input_ids.device)
    size = group_size(inverse)
    if size is not None and supports_shared_prefix(model):  # one copy of each prompt, read once per group
        return to_shared_prefix(cache, inverse, size)
    cache.batch_select_indices(inverse)
    return cache


def copyable(cache: Any) -> bool:
    """Whether every layer of `cache` is plain keys and values that row indexing copies whole. Hybrid models'
    linear-attention layers (Qwen3.5's DeltaNet) also hold recurrent and convolution states that transformers'
    `batch_select_indices` leaves behind, so their prompts are prefilled per row as usual."""

    layers = getattr(cache, "layers", None)
    if not layers or not hasattr(cache, "batch_select_indices"):
        return False
    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)
