"""Mining preference pairs from an agent's own failures on the `mine` split (`mine_pairs`): chosen responses built
from the case's own think where it argues for the right action (as the case study built them), else from the gold
turn; rejected ones the agent's wrong output. The pair record, its leakage checks and I/O: `training.pairs`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from toolprior.actions import HELD_OUT_SPLITS, Action
from toolprior.cases import Case, GoldTurn
from toolprior.chat_template import case_to_chat
from toolprior.errors import InputError, Problem
from toolprior.output_format import parse_turn, render_turn
from toolprior.think_judge import RuleThinkJudge

if TYPE_CHECKING:
    from toolprior.verdict import Verdict
from toolprior.training.pairs import (
    COUNT_KEYS,
    DEFAULT_ALLOWED_SPLITS,
    GOLD,
    OWN_THINK,
    SHOW_IDS,
    UNPARSED,
    Pair,
    PairSet,
    check_allowed,
    held_out_index,
    leak_error,
    leakage_reason,
    twins_of,
)


def _gold_names_ok(think: str, case: Case, gold: GoldTurn) -> bool:
    """For call_tool: the think names no tool of the case that the gold does not call."""
    if gold.action is not Action.CALL_TOOL:
        return True

    called = {c.name for c in gold.tool_calls}
    for tool in case.tools:
        if tool.name not in called and re.search(rf"\b{re.escape(tool.name)}\b", think):
            return False
    return True


def _chosen_ok(text: str, case: Case, gold: GoldTurn) -> bool:
    parsed = parse_turn(text, case.tools)
    return parsed.action is gold.action and not parsed.problems


def mine_pairs(
    cases: Iterable[Case],
    verdicts: Iterable[Verdict],
    *,
    judge: Any = None,
    eval_cases: Iterable[Case] = (),
    allowed_splits: Sequence[str] = DEFAULT_ALLOWED_SPLITS,
    source: str = "<verdicts>",
) -> PairSet:
    """Preference pairs from the failed verdicts (rules in the module docstring).

    `cases` must hold the case of every verdict (InputError naming the missing ids otherwise); `judge` maps
    (think, case) to the action the think argues for (default `toolprior.think_judge.RuleThinkJudge()`); `eval_cases`
    are held out whatever their split field says; `source` names the verdicts in error messages. Raises InputError
    before building anything when a failure would put a held-out case into training or comes from a split outside
    `allowed_splits`."""
    allowed = check_allowed(allowed_splits)
    cases = list(cases)
    eval_cases = list(eval_cases)
    verdicts = list(verdicts)
    by_id = {c.id: c for c in cases}
    held_out = held_out_index(cases, eval_cases)
    named_by = twins_of([*cases, *eval_cases])

    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["verdicts"] = len(verdicts)
    failures = [v for v in verdicts if not v.correct]
    counts["correct"] = len(verdicts) - len(failures)
    counts["failures"] = len(failures)

    missing = sorted({v.id for v in failures if v.id not in by_id})
    if missing:
        shown = ", ".join(missing[:SHOW_IDS]) + (
            f" (+{len(missing) - SHOW_IDS} more)" if len(missing) > SHOW_IDS else ""
        )
        raise InputError(Problem(source, None, "id", f"failed verdicts name cases not among the case files: {shown}"))
    leaks: list[str] = []
    off_split: list[str] = []
    for v in failures:
        case = by_id[v.id]
        reason = leakage_reason(case.id, case.split, case.twin, held_out, named_by)
        if reason is None and v.split in HELD_OUT_SPLITS:
            reason = f"{case.id} was scored as a held-out case (verdict split {v.split})"
        if reason is not None:
            leaks.append(reason)
        elif case.split not in allowed:
            off_split.append(f"{case.id} (split {case.split})")
    if leaks:
        raise leak_error(source, leaks)
    if off_split:
        shown = ", ".join(off_split[:SHOW_IDS]) + (
            f" and {len(off_split) - SHOW_IDS} more" if len(off_split) > SHOW_IDS else ""
        )
        raise InputError(
            Problem(source, None, "split", f"pairs come only from {', '.join(allowed)}; refusing failures on {shown}")
        )

    if judge is None:
        judge = RuleThinkJudge()
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for v in failures:
        case = by_id[v.id]
        gold = case.gold
        if gold is None:
            counts["no_gold"] += 1
            continue
        rejected = v.output
        think = v.think if v.think is not None else parse_turn(rejected).think
        argues = judge(think, case) if think and think.strip() else None
        source_kind = GOLD
        chosen = render_turn(gold)
        if argues == gold.action.value and think and _gold_names_ok(think, case, gold):
            own = render_turn(
                GoldTurn(think=think, action=gold.action, content=gold.content, tool_calls=gold.tool_calls)
            )
            if _chosen_ok(own, case, gold):
                chosen, source_kind = own, OWN_THINK
            else:
                counts["own_think_fallback"] += 1
        if source_kind == GOLD and not _chosen_ok(chosen, case, gold):
            counts["unparseable"] += 1
            continue
        if chosen.strip() == rejected.strip():
            counts["identical"] += 1
            continue
        if (case.id, rejected) in seen:
            counts["duplicate"] += 1
            continue
        seen.add((case.id, rejected))
        messages, tools = case_to_chat(case)
        pairs.append(
            Pair(
                id=case.id,
                category=case.category,
                split=case.split,
                expected_action=case.expected_action.value,
                rejected_action=v.predicted if v.predicted is not None else UNPARSED,
                chosen_source=source_kind,
                prompt=messages,
                tools=tools,
                chosen=[{"role": "assistant", "content": chosen}],
                rejected=[{"role": "assistant", "content": rejected}],
                twin=case.twin,
                think_argues=argues,
            )
        )
    counts["kept"] = len(pairs)
    return PairSet(pairs=pairs, counts=counts)
