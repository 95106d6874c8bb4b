"""Left-padded batches, as every capture backend and the patching engine run them.

Batches are LEFT padded whatever the tokenizer's padding_side, with position ids counted from each row's first
real token, so a row gives the same numbers alone as in a mixed-length batch. A backend, once opened on a model and
its hook points, is a `Runner`: batch -> {hook name: [B, ...] at the batch's positions}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from toolprior.model_protocols import CausalLM
from toolprior.probes.positions import Positions


@dataclass(frozen=True)
class Batch:
    """One left-padded batch as every backend runs it. `rows` are the caller's indices of its rows."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    positions: Positions
    rows: tuple[int, ...]


# A backend, once opened on a model and a list of hook points: batch -> {hook name: [B, ...] at the positions}.
Runner = Callable[[Batch], dict[str, torch.Tensor]]


def model_device(model: CausalLM) -> torch.device:
    """The device of the model's first parameter that is not on the meta device (where inputs go)."""
    return next(p.device for p in model.parameters() if p.device.type != "meta")


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) of token lists, left padded; positions count from each row's first
    real token (pad positions get 0), as `generate` does, so padding does not shift RoPE."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("cannot capture an empty text")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its eos token."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
    return int(pad)
