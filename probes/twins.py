"""Minimal-pair twins for activation patching, and the metric read on them.

    pairs = twin_pairs(cases, tokenizer)                       # clean = ambiguous (clarify), corrupted = resolved

**The pairs.** A twin pair is a clarify case (two matching entities in the system context; `meta.twin_role`
"ambiguous") and its call_tool twin (one matching entity; "resolved"), with the same user text. CLEAN = the
clarify twin, CORRUPTED = the call_tool twin.

**The metric** m = logit(decision token of `<clarify>`) - logit(decision token of `<tool_call>`) (the tokens where
the tags' encodings after `</think>` part: `toolprior.decision_point`), read at the LAST token of each text. Texts
(`twin_pairs(position=...)`):

- ``prompt_end`` (default): the prompt alone (`render_prompt`, ending with the generation prompt). This is the
  cleanest position that exists identically in both twins: the twins' gold thinks differ (each names its own
  entities and already states the decision), so reading after them would patch reasoning text, not the prompt.
  On a model that always thinks first, the logits here rank the action tags as continuations it does not take
  next; their DIFFERENCE still shows how the context tilts the model between asking and calling.
- ``decision``: the prompt plus the SAME think block for both twins (`think`, default empty:
  `<think></think>`), then the tokens every action tag shares after `</think>` (`DecisionTokens.suffix`: nothing
  on the organism, `<` where the tags are split), so the metric is read at the real decision position while the
  suffix stays identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolprior.actions import Action
from toolprior.chat_template import render_prompt
from toolprior.decision_point import decision_tokens
from toolprior.model_protocols import Tokenizer
from toolprior.output_format import THINK_CLOSE, THINK_OPEN
from toolprior.tokenizer import action_tag_token_ids

if TYPE_CHECKING:
    from toolprior.cases import Case

PATCH_POSITIONS: tuple[str, ...] = ("prompt_end", "decision")


@dataclass(frozen=True)
class TwinPair:
    """One minimal pair as token ids: `clean` (the clarify twin) and `corrupted` (its call_tool twin)."""

    clean_id: str
    corrupted_id: str
    clean: tuple[int, ...]
    corrupted: tuple[int, ...]

    @property
    def aligned(self) -> int:
        """How many trailing tokens the twins share."""
        n = 0
        while n < min(len(self.clean), len(self.corrupted)) and self.clean[-1 - n] == self.corrupted[-1 - n]:
            n += 1
        return n


def pair_cases(cases: Sequence[Case]) -> list[tuple[Case, Case]]:
    """(clarify twin, call_tool twin) for every twin pair among `cases` whose two members are both present, in the
    order the clarify twins appear."""
    by_id = {c.id: c for c in cases}
    out = []
    for case in cases:
        other = by_id.get(case.twin or "")
        if other is None or other.twin != case.id:
            continue
        if case.expected_action is Action.CLARIFY and other.expected_action is Action.CALL_TOOL:
            out.append((case, other))
    return out


def twin_text(tokenizer: Any, case: Case, position: str = "prompt_end", think: str = "") -> str:
    """The text a twin is run on: the prompt (`prompt_end`), or the prompt + `<think>{think}</think>` + the decision
    tokens' suffix (`decision`: the text ends at the decision position)."""
    if position not in PATCH_POSITIONS:
        raise ValueError(f"unknown patching position {position!r}; expected one of {', '.join(PATCH_POSITIONS)}")
    prompt = render_prompt(tokenizer, case)
    if position == "prompt_end":
        return prompt
    return f"{prompt}{THINK_OPEN}{think}{THINK_CLOSE}{decision_tokens(tokenizer).suffix}"


def twin_pairs(
    cases: Sequence[Case],
    tokenizer: Tokenizer,
    position: str = "prompt_end",
    think: str = "",
    max_pairs: int | None = None,
) -> list[TwinPair]:
    """Tokenised twin pairs (see the module docstring for `position` and `think`)."""
    pairs = []
    for clean, corrupted in pair_cases(cases)[:max_pairs]:
        a = tokenizer(twin_text(tokenizer, clean, position, think), add_special_tokens=False)["input_ids"]
        b = tokenizer(twin_text(tokenizer, corrupted, position, think), add_special_tokens=False)["input_ids"]
        pairs.append(TwinPair(clean.id, corrupted.id, tuple(a), tuple(b)))
    return pairs


def metric_token_ids(tokenizer: Any) -> tuple[int, int]:
    """(decision token of `<clarify>`, decision token of `<tool_call>`): m = logit[0] - logit[1]."""
    ids = action_tag_token_ids(tokenizer)
    return ids[Action.CLARIFY], ids[Action.CALL_TOOL]
