"""Which token positions of each row an activation is read at.

Every rule is computed per row from `input_ids` and `attention_mask`, so LEFT padding (the project's default) and
right padding both give the same positions as the row run alone; pad tokens are never read.

Rules (`POSITION_RULES`):

- ``prompt_end``  the last real token of a PROMPT text (what `render_prompt` gives, ending with the generation
                  prompt): the position whose output predicts the first assistant token. Feed prompt-only texts;
                  on a text that already holds an assistant turn use ``decision``.
- ``decision``    in a text holding prompt + assistant turn, the DECISION POSITION (`toolprior.decision_point`):
                  the last token of P, the token prefix every `</think><tag>` shares (the `</think>` token on the
                  organism; `</think>` then `<` on a vocabulary that splits the tags), at the row's last
                  `</think>`. Its next-token logits choose the action (each action's decision token is predicted
                  here), so activations here do not yet contain the action's choice. A text may stop right
                  after P; one that stops right after `</think>` lacks P's later tokens: append
                  `DecisionTokens.suffix` first (`probes.capture.case_texts` does), else the row is missing.
- ``think_mean``  the mean over the think block's tokens: from the `<think>` token to the `</think>` token, both
                  tags included, no padding (the last `<think>` before the last `</think>`).
- ``last``        the last real token of the row.

A row without `</think>` (``decision``: without P at its last `</think>`; ``think_mean``: without a `<think>` before
it) raises `MissingThinkError`, which names the rows: reading a different position silently would mix
decision-point activations with something else. Filter such rows out (a model that never closed its think block
made no decision to read) and capture again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from toolprior.decision_point import decision_tokens
from toolprior.model_protocols import Tokenizer
from toolprior.output_format import THINK_CLOSE, THINK_OPEN

POSITION_RULES: tuple[str, ...] = ("prompt_end", "decision", "think_mean", "last")
# Rules whose texts must hold an assistant turn up to `</think>`.
THINK_RULES: tuple[str, ...] = ("decision", "think_mean")


class MissingThinkError(ValueError):
    """Rows that have no `</think>` (or no `<think>` before it) where the position rule needs one."""

    def __init__(self, message: str, rows: Sequence[int]) -> None:
        super().__init__(message)
        self.rows = tuple(rows)


@dataclass(frozen=True)
class Positions:
    """The positions of one batch: one index per row, or (think_mean) a mask of the positions to average.

    `index` is [B] (long); `mask` is [B, T] (bool). Exactly one of them is set."""

    index: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.index is None) == (self.mask is None):
            raise ValueError("Positions needs exactly one of index or mask")

    def select(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, ...] -> [B, ...]: the value at each row's position, or its mean over the masked positions.

        Padding never enters: the mean uses `where`, not a multiply, so a NaN at a pad position cannot leak in."""
        if self.index is not None:
            index = self.index.to(x.device)
            return x[torch.arange(x.shape[0], device=x.device), index]
        assert self.mask is not None
        mask = self.mask.to(x.device).reshape(*self.mask.shape, *([1] * (x.dim() - 2)))
        total = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(dim=1)
        return total / mask.sum(dim=1).to(x.dtype)

    def to(self, device: torch.device | str) -> Positions:
        if self.index is not None:
            return Positions(index=self.index.to(device))
        assert self.mask is not None
        return Positions(mask=self.mask.to(device))


def think_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The token ids of `<think>` and `</think>` (one id each on the organism; possibly several elsewhere)."""
    open_ids = tokenizer.encode(THINK_OPEN, add_special_tokens=False)
    close_ids = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    if not open_ids or not close_ids:
        raise ValueError("the tokenizer encodes <think> or </think> to no tokens")
    return list(open_ids), list(close_ids)


def _last_occurrence(row: list[int], pattern: Sequence[int], end: int) -> int | None:
    """Start index of the last occurrence of `pattern` in row[:end], or None."""
    n = len(pattern)
    first = pattern[0]
    pattern = list(pattern)
    for start in range(end - n, -1, -1):
        if row[start] == first and row[start : start + n] == pattern:
            return start
    return None


def last_real(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B] index of each row's last real token (works for left and right padding)."""
    mask = attention_mask.to(torch.long)
    if bool((mask.sum(dim=1) == 0).any()):
        raise ValueError("a row has no real tokens (attention_mask all zero)")
    width = mask.shape[1]
    # The largest index whose mask is 1: argmax over the reversed row.
    return width - 1 - torch.flip(mask, dims=[1]).argmax(dim=1)


def compute_positions(
    rule: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    tokenizer: Tokenizer | None = None,
    *,
    think_ids: tuple[list[int], list[int]] | None = None,
    decision_ids: Sequence[int] | None = None,
) -> Positions:
    """The positions `rule` selects in each row of a batch (see the module docstring).

    `decision` and `think_mean` need the `<think>` / `</think>` ids: pass `tokenizer` or `think_ids`; `decision`
    also needs P (`toolprior.decision_point.decision_tokens(tokenizer).shared`): pass `tokenizer` or `decision_ids`.

        >>> pos = compute_positions("decision", batch.input_ids, batch.attention_mask, tokenizer)
        >>> pos.select(hidden)  # [B, d]
    """
    if rule not in POSITION_RULES:
        raise ValueError(f"unknown position rule {rule!r}; expected one of {', '.join(POSITION_RULES)}")
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must be the same [B, T]"
        )
    ends = last_real(attention_mask)
    if rule in ("prompt_end", "last"):
        return Positions(index=ends)

    if think_ids is None or (rule == "decision" and decision_ids is None):
        if tokenizer is None:
            raise ValueError(f"position rule {rule!r} needs the tokenizer (to find <think>, </think> and the decision)")
        think_ids = think_ids or think_token_ids(tokenizer)
        if rule == "decision" and decision_ids is None:
            decision_ids = decision_tokens(tokenizer).shared
    open_ids, close_ids = think_ids
    ids = input_ids.tolist()
    real = attention_mask.to(torch.bool).tolist()
    closes: list[int] = []
    opens: list[int] = []
    missing: list[int] = []
    for b, row in enumerate(ids):
        # Pad ids may equal real ids (pad = eos); blank them so a match never touches padding.
        row = [tok if keep else -1 for tok, keep in zip(row, real[b], strict=True)]
        close = _last_occurrence(row, close_ids, len(row))
        if rule == "decision":
            assert decision_ids is not None
            at = _last_occurrence(row, decision_ids, len(row))
            # A `</think>` after P's start is one P does not follow (a text cut at `</think>` without the suffix):
            # reading the earlier P (an earlier turn's) would read the wrong decision.
            if at is None or (close is not None and close > at):
                missing.append(b)
                continue
            closes.append(at + len(decision_ids) - 1)
            continue
        if close is None:
            missing.append(b)
            continue
        closes.append(close + len(close_ids) - 1)
        start = _last_occurrence(row, open_ids, close)
        if start is None:
            missing.append(b)
            continue
        opens.append(start)
    if missing:
        what = (
            f"{THINK_CLOSE} followed by the decision tokens {list(decision_ids or [])} (append "
            "toolprior.decision_point.DecisionTokens.suffix to a text that stops at </think>)"
            if rule == "decision"
            else f"a {THINK_OPEN}...{THINK_CLOSE} block"
        )
        raise MissingThinkError(f"position rule {rule!r}: rows {missing} have no {what}", missing)
    if rule == "decision":
        return Positions(index=torch.tensor(closes, dtype=torch.long, device=input_ids.device))
    columns = torch.arange(input_ids.shape[1], device=input_ids.device)
    lo = torch.tensor(opens, dtype=torch.long, device=input_ids.device)[:, None]
    hi = torch.tensor(closes, dtype=torch.long, device=input_ids.device)[:, None]
    mask = (columns >= lo) & (columns <= hi) & attention_mask.to(torch.bool)
    return Positions(mask=mask)
