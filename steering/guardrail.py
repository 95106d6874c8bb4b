"""The guardrail baseline: the case study's cheap fallback, scored like every other method.

    verdicts = guardrail_evaluate(model, tokenizer, cases, HarnessConfig())

Two stages, each one batched generation over the cases:

1. the model writes its whole turn (or the outputs of an earlier run are passed as `first_outputs`, so an SFT
   eval's generations are reused and only stage 2 costs anything);
2. where the turn has a `</think>` and the think judge (`toolprior.think_judge.RuleThinkJudge` by default) says the
   think argues for asking (clarify), the turn is cut right after `</think>`, the `<clarify>` tag is appended, and
   the model continues the block from there. Every other turn keeps the model's own action. A turn that already
   opens `<clarify>` after its think is kept as is (greedy decoding would write the same again).

The cut is made in text, so it holds on any tokenizer: the appended `<clarify>` covers the decision point whatever
it is (`toolprior.decision_point`: the tokens every tag shares after `</think>`, e.g. `<`, then clarify's decision
token), and prompt + forced prefix is tokenized as one string, as the decision point is defined. Whitespace the
model wrote after `</think>` is dropped (the format has none).

The full output text is parsed and judged like any other (`evals.verdicts.verdict_for`); `Verdict.meta` says
whether the guardrail fired ("guardrail": "forced_clarify" or "kept") and `Verdict.think_argues` what the judge
read. Only the decision turn is scored (`HarnessConfig.max_turns == 1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolprior.chat_template import render_prompt
from toolprior.evals.generation import generate
from toolprior.evals.harness import HarnessConfig
from toolprior.evals.verdicts import verdict_for
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.output_format import THINK_CLOSE, THINK_OPEN, parse_turn
from toolprior.think_judge import RuleThinkJudge

if TYPE_CHECKING:
    from toolprior.cases import Case
    from toolprior.evals.harness import HarnessConfig
    from toolprior.generation_batch import SteeringFactory
    from toolprior.think_judge import ThinkJudge
    from toolprior.verdict import Verdict

FORCED_TAG = "<clarify>"


@dataclass(frozen=True)
class GuardedTurn:
    """One case's final output, whether the guardrail forced the tag, and what the judge read in the think."""

    output: str
    forced: bool
    think_argues: str | None


def _think_of(turn: str) -> tuple[str, str] | None:
    """(think text, the turn up to and including its `</think>`), or None when the turn closes no think."""

    close = turn.find(THINK_CLOSE)
    if close < 0:
        return None
    start = turn.rfind(THINK_OPEN, 0, close)
    body = turn[start + len(THINK_OPEN) : close] if start >= 0 else turn[:close]
    return body.strip(), turn[: close + len(THINK_CLOSE)]


def guard_outputs(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    first_outputs: Sequence[str],
    *,
    judge: ThinkJudge | None = None,
    max_new_tokens: int = 160,
    batch_size: int = 32,
    steer: SteeringFactory | None = None,
) -> list[GuardedTurn]:
    """Stage 2 of the guardrail on given stage-1 outputs (one per case): force `<clarify>` after `</think>` where
    the think argues for asking, and let the model continue."""

    if len(first_outputs) != len(cases):
        raise ValueError(f"{len(cases)} cases but {len(first_outputs)} first-stage outputs")
    judge = judge or RuleThinkJudge()
    turns: list[GuardedTurn] = []
    forced_rows: list[int] = []
    prefixes: list[str] = []
    for i, (case, output) in enumerate(zip(cases, first_outputs, strict=True)):
        found = _think_of(output)
        if found is None:
            turns.append(GuardedTurn(output, False, None))
            continue
        think, prefix = found
        argues = judge(think, case)
        if argues == "clarify" and not output[len(prefix) :].lstrip().startswith(FORCED_TAG):
            forced_rows.append(i)
            prefixes.append(prefix + FORCED_TAG)
        turns.append(GuardedTurn(output, False, argues))
    if forced_rows:
        prompts = [render_prompt(tokenizer, cases[i]) + p for i, p in zip(forced_rows, prefixes, strict=True)]
        continued = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            steer=steer,
            desc="guardrail",
        )
        for i, prefix, tail in zip(forced_rows, prefixes, continued, strict=True):
            turns[i] = GuardedTurn(prefix + tail, True, turns[i].think_argues)
    return turns


def guardrail_evaluate(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    config: HarnessConfig | None = None,
    *,
    judge: ThinkJudge | None = None,
    first_outputs: Sequence[str] | None = None,
    progress: bool = False,
) -> list[Verdict]:
    """Score the guardrail on `cases`: one Verdict per case, in order (see the module docstring)."""

    config = config or HarnessConfig()
    if config.max_turns != 1:
        raise ValueError("the guardrail scores the decision turn only (max_turns=1)")
    if first_outputs is None:
        prompts = [render_prompt(tokenizer, c) for c in cases]
        first_outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            progress=progress,
            desc="guardrail think",
        )
    guarded = guard_outputs(
        model,
        tokenizer,
        cases,
        first_outputs,
        judge=judge,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
    )
    verdicts = []
    for case, turn in zip(cases, guarded, strict=True):
        verdict = verdict_for(
            case,
            parse_turn(turn.output, case.tools),
            output=turn.output,
            meta={"turns": 1, "guardrail": "forced_clarify" if turn.forced else "kept"},
        )
        verdict.think_argues = turn.think_argues
        verdicts.append(verdict)
    return verdicts
