"""Which positions of each forward pass a steering context steers (`PositionTracker`), row by row, across the
steps of a cached generation: the rules of `POSITIONS` (see `steering.apply`'s docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from toolprior.steering_names import POSITIONS


class PositionTracker:
    """Which positions of each forward pass to steer, row by row, across the steps of a cached generation.

    `begin((B, T), input_ids=, attention_mask=, past_length=)` is called once per forward pass before any block
    runs and returns (and keeps as `current`) the [B, T] bool mask of positions to steer. `decision_ids`
    ("from_decision" only): P of `toolprior.decision_point`, matched whole (it may span forward passes); the
    decision column is its last token."""

    def __init__(
        self,
        rule: str,
        *,
        prompt_mask: torch.Tensor | None = None,
        prompt_ids: torch.Tensor | None = None,
        decision_ids: Sequence[int] | None = None,
        stops: Iterable[int] = (),
    ) -> None:
        if rule not in POSITIONS:
            raise ValueError(f"unknown steering positions {rule!r}; expected one of {', '.join(POSITIONS)}")
        if rule == "from_decision" and not decision_ids:
            raise ValueError("positions='from_decision' needs the decision tokens P (pass tokenizer=)")
        self.rule = rule
        self.prompt_mask = None if prompt_mask is None else prompt_mask.detach().to("cpu", torch.bool)
        self.prompt_ids = None if prompt_ids is None else prompt_ids.detach().to("cpu")
        self.decision_ids = list(decision_ids or [])
        self.stops = set(stops)
        self.total = 0
        self.prompt_width: int | None = None
        self.decision: list[int | None] = []
        self._tails: list[list[int]] = []
        self.current: torch.Tensor | None = None

    def _new_sequence(self, batch: int, width: int) -> None:
        self.prompt_width = int(self.prompt_mask.shape[1]) if self.prompt_mask is not None else width
        self.decision = [None] * batch
        self._tails = [[] for _ in range(batch)]

    def begin(
        self,
        shape: tuple[int, int],
        *,
        input_ids: torch.Tensor | None = None,
        attention_mask: Any = None,
        past_length: int | None = None,
    ) -> torch.Tensor:
        batch, n_new = int(shape[0]), int(shape[1])
        full_mask = attention_mask if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2 else None
        if full_mask is not None and full_mask.shape[1] >= n_new:
            offset = int(full_mask.shape[1]) - n_new
        else:
            full_mask = None
            offset = int(past_length or 0)
        if offset == 0 or self.prompt_width is None:
            self._new_sequence(batch, n_new)
        if len(self.decision) != batch:
            raise RuntimeError(f"steering state is for {len(self.decision)} rows, the forward pass has {batch}")
        if self.prompt_mask is not None and self.prompt_mask.shape[0] != batch:
            raise ValueError(f"the attention mask given has {self.prompt_mask.shape[0]} rows, the forward pass {batch}")
        cols = torch.arange(offset, offset + n_new)
        if full_mask is not None:
            real = full_mask[:, offset:].detach().to("cpu", torch.bool)
        else:
            real = torch.ones(batch, n_new, dtype=torch.bool)
            if self.prompt_mask is not None:
                inside = cols < self.prompt_mask.shape[1]
                real[:, inside] = self.prompt_mask[:, cols[inside]]
        assert self.prompt_width is not None
        if self.rule == "all":
            mask = real
        elif self.rule == "prompt":
            mask = real & (cols < self.prompt_width)
        elif self.rule == "generated":
            mask = real & (cols >= self.prompt_width)
        else:
            self._find_decisions(self._ids_for(input_ids, offset, (batch, n_new)), real, offset)
            never = offset + n_new
            starts = torch.tensor([never if d is None else d for d in self.decision], dtype=torch.long)
            mask = real & (cols.unsqueeze(0) >= starts.unsqueeze(1))
        self.total = offset + n_new
        self.current = mask
        return mask

    def _ids_for(self, input_ids: torch.Tensor | None, offset: int, shape: tuple[int, int]) -> torch.Tensor:
        if input_ids is not None:
            return input_ids.detach().to("cpu")
        if offset == 0 and self.prompt_ids is not None and tuple(self.prompt_ids.shape) == shape:
            return self.prompt_ids
        raise RuntimeError(
            "positions='from_decision' needs the token ids of each forward pass (the model was run on embeddings)"
        )

    def _find_decisions(self, ids: torch.Tensor, real: torch.Tensor, offset: int) -> None:
        """Record each row's decision column: the last token of its first P (`</think>` and the tokens every tag
        shares after it) of the turn being written. In the prompt, an end-of-turn token clears it (that P belonged
        to an earlier turn)."""
        assert self.prompt_width is not None
        n = len(self.decision_ids)
        rows, flags = ids.tolist(), real.tolist()
        for b, (row, keep) in enumerate(zip(rows, flags, strict=True)):
            tail = self._tails[b]
            for t, (token, is_real) in enumerate(zip(row, keep, strict=True)):
                if not is_real:
                    continue
                col = offset + t
                tail.append(token)
                if len(tail) > n:
                    del tail[0]
                if tail == self.decision_ids:
                    if self.decision[b] is None:
                        self.decision[b] = col
                elif col < self.prompt_width and token in self.stops:
                    self.decision[b] = None
