"""The decision point on any tokenizer: where, after `</think>`, the action tags' token sequences part ways.

The agent writes `<think>...</think>` then one action block opened by `<tool_call>`, `<clarify>`, `<answer>`,
`<escalate>` or `<refuse>` (`toolprior.actions.ACTION_TAGS`), with nothing between `</think>` and the tag
(`toolprior.output_format`). Which action the model takes is decided at the first token where the tags differ.

Definition. Tokenize `"</think>" + "<" + tag + ">"` for every action's tag, each as one string (so a BPE merge
across the boundary, e.g. `><`, is what the model really sees), and take the longest common token prefix P of these
sequences. The sequences diverge at index len(P):

- the DECISION POSITION is the position of P's last token: the last token of `</think>` plus any tokens every tag
  shares after it (a bare `<` where `</think>` is one token and the tags are split; on SmolLM2's vocabulary without
  added tags P is `</`, `think`, `><`: the tags' `<` merges with `</think>`'s `>`). Its next-token logits choose
  the action; probes read there, and the prior's logit gap is read there;
- each action's DECISION TOKEN is its sequence's token at index len(P); they must all differ (else ValueError).

Where every tag is one token (the project's organism, or a model after `toolprior.tokenizer.add_format_tokens`),
P is exactly the `</think>` tokens and the decision position is the `</think>` token.

A text that stops right after `</think>` lacks P's tokens beyond it: append `DecisionTokens.suffix` (the text of
P after `</think>`: "" or "<") so the decision position exists. The format has nothing between `</think>` and the
tag, so P is computed without whitespace; callers that cut a model's turn at `</think>` drop whatever whitespace
the model wrote there and append the suffix, so the position is read exactly where the format's decision lies.

    dt = decision_tokens(tokenizer)
    dt.shared                        # P, e.g. (id of "</think>", id of "<")
    dt.per_action[Action.CLARIFY]    # the token whose logit at the decision position means "clarify"
    text = turn_up_to_think_close + dt.suffix
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolprior.actions import ACTION_TAGS, Action
from toolprior.output_format import THINK_CLOSE


@dataclass(frozen=True)
class DecisionTokens:
    """The decision point of one tokenizer (see the module docstring).

    shared: P, the token ids every `</think><tag>` starts with; its last token is the decision position.
    per_action: each action's decision token (the token after P), all distinct.
    suffix: the text P covers beyond `</think>` ("" where the tags are single tokens)."""

    shared: tuple[int, ...]
    per_action: Mapping[Action, int]
    suffix: str = ""

    @property
    def text(self) -> str:
        """The text P encodes: `</think>` and the suffix."""
        return THINK_CLOSE + self.suffix

    @property
    def action_of(self) -> dict[int, Action]:
        """Decision token id -> its action."""
        return {token: action for action, token in self.per_action.items()}


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def _common_prefix(sequences: list[list[int]]) -> list[int]:
    first = sequences[0]
    n = 0
    while n < len(first) and all(len(s) > n and s[n] == first[n] for s in sequences):
        n += 1
    return first[:n]


def _suffix_text(tokenizer: Any, shared: list[int]) -> str | None:
    """The text s with encode("</think>" + s) == P, s a common prefix of all "<tag>" strings (longest first).
    Found by encoding candidates rather than decoding P, so no decoder quirk (prefix spaces, cleanup) can leak in."""
    tags = [f"<{tag}>" for tag in ACTION_TAGS.values()]
    n = 0
    while all(len(t) > n and t[n] == tags[0][n] for t in tags):
        n += 1
    for length in range(n, -1, -1):
        if _encode(tokenizer, THINK_CLOSE + tags[0][:length]) == shared:
            return tags[0][:length]
    return None


def decision_tokens(tokenizer: Any) -> DecisionTokens:
    """The decision point of `tokenizer`: P, each action's decision token and P's text after `</think>`.

    Needs only `tokenizer.encode(text, add_special_tokens=False)`. Not cached: adding tokens to a tokenizer
    (`add_format_tokens`) changes the answer. Raises ValueError where the tags do not part after `</think>` or two
    actions share their decision token (then the logit gap between them cannot be read: add the tags as tokens
    with `toolprior.tokenizer.add_format_tokens`)."""
    sequences = {action: _encode(tokenizer, f"{THINK_CLOSE}<{tag}>") for action, tag in ACTION_TAGS.items()}
    shared = _common_prefix(list(sequences.values()))
    short = [a.value for a, s in sequences.items() if len(s) <= len(shared)]
    if not shared or short:
        raise ValueError(
            f"the action tags' tokens after {THINK_CLOSE} do not diverge after a shared prefix "
            f"(shared {shared}, no decision token for {short or 'any action'}); add the format tags as tokens "
            "(toolprior.tokenizer.add_format_tokens) before reading the decision point"
        )
    per_action = {action: s[len(shared)] for action, s in sequences.items()}
    seen: dict[int, Action] = {}
    for action, token_id in per_action.items():
        if token_id in seen:
            raise ValueError(
                f"actions {seen[token_id].value} and {action.value} have the same decision token id {token_id} "
                f"(the tags' tokens after {THINK_CLOSE} diverge at index {len(shared)}, after {shared}); add the "
                "format tags as tokens (toolprior.tokenizer.add_format_tokens) before reading the prior"
            )
        seen[token_id] = action
    suffix = _suffix_text(tokenizer, shared)
    if suffix is None:
        raise ValueError(
            f"the tokens every action tag shares after {THINK_CLOSE} ({shared}) do not end on a character boundary "
            f"of {THINK_CLOSE}<tag>: the decision position cannot be written as text; add the format tags as tokens "
            "(toolprior.tokenizer.add_format_tokens)"
        )
    return DecisionTokens(tuple(shared), per_action, suffix)
