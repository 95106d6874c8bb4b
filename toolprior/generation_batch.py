"""One left-padded generation batch as the model sees it (`GenerationBatch`), and the steering factory protocol:
what generation hands a steering context so it knows where each row's real tokens are. A record low in the house:
evals builds batches, steering reads them, neither imports the other for it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class GenerationBatch:
    """One left-padded batch as the model sees it. A steering context built from it knows, per row, where the
    prompt starts (`pad_lengths`) and where generation begins (column `input_ids.shape[1]`)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    rows: tuple[int, ...]

    @property
    def prompt_width(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def pad_lengths(self) -> torch.Tensor:
        return (self.attention_mask == 0).sum(dim=1)

    @property
    def prompt_lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(dim=1)


SteeringFactory = Callable[[GenerationBatch], AbstractContextManager[Any]]
