"""Per-method scores in the shape of report.json's `methods.<name>` (DESIGN.md, "Results contract").

`score(verdicts)` gives:

- `n`: the number of verdicts; `overall`: the share correct.
- `macro_action`: the mean, over the expected actions present, of each action's accuracy.
- `per_action`: {action: {n, acc, ci95, top_wrong, top_wrong_rate}}. `top_wrong` is the most common wrong
  prediction for that expected action ("unparsed" for an unparseable output; ties go to the earlier action in
  ACTION_NAMES order, "unparsed" last); `top_wrong_rate` is its count over ALL cases of that expected action
  (the case study's "clarify -> call_tool 93%"). Both None when the action has no error.
- `per_category`: {category: {n, acc, ci95}}.
- `confusion`: {expected: {predicted or "unparsed": count}} (non-zero counts only).
- `think_action_mismatch`: among verdicts whose think block argues for an action other than call_tool
  (`think_argues` set and not "call_tool"), the share whose predicted action is call_tool: the think said "ask",
  the action called the tool anyway. None when no verdict qualifies.
- `tool_name_accuracy` / `tool_accuracy`: among verdicts expecting call_tool, predicted call_tool and checked
  against gold calls (`tool_name_ok` not None), the share with the right tool names / with both the right names
  and the right arguments. None when none.
- `unparsed_rate`: the share of verdicts with no parseable action; `splits`: the sorted splits present.
- `clarify_by_ambiguity`: the clarify cases by `meta.ambiguity` (implicit: two matching entities in the system
  context; explicit: the user's words are ambiguous; missing_param; ...): {kind: {n, acc, ci95, top_wrong,
  top_wrong_rate}}, the case study's "an explicit cue is asked about, an implicit one loses to the tool call".
- `think_says_clarify`: among verdicts whose think argues for clarify, {n, called_tool}: how many then called a tool
  anyway (the case study's 73 of 77).
- `asks_where_it_should`: {clarify_cases: {asked, n}, call_tool_cases: {asked, n}, p, p_within_category}: how many
  clarify cases and call_tool cases were answered with clarify, and a one-sided Fisher exact p that this method asks
  more on the clarify cases than on the call_tool cases (None without clarify or call_tool cases, or without an
  ask). A method that only asks more often raises both counts alike; one that tells when to ask raises the first.
  `p_within_category`: the same one-sided question within each case category (Mantel-Haenszel), since categories
  differ in both rates alike (no one asks mid-trajectory, after a tool result). Both are one method's tests: read
  them beside the reference's counts.

Accuracies use `Verdict.correct` (the action is acceptable; tools are scored apart, above). Intervals are Wilson 95%.
Floats are rounded to 4 decimals, p-values excepted. Key order is deterministic: actions in ACTION_NAMES order,
categories in CATEGORIES order, then the external categories, then any others sorted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from toolprior.actions import ACTION_NAMES, CATEGORIES, EXTERNAL_CATEGORIES, SPLITS
from toolprior.evals.statistics import rate_greater, rate_greater_within, wilson_interval
from toolprior.verdict import UNPARSED, Verdict

DIGITS = 4
CALL_TOOL = "call_tool"
CLARIFY = "clarify"


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), DIGITS)


def _ordered(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    """`keys` in the order of `order`, then the rest sorted."""
    present = set(keys)
    known = [k for k in order if k in present]
    return known + sorted(present - set(order))


def _label_order(labels: Iterable[str]) -> list[str]:
    present = set(labels)
    out = _ordered(present - {UNPARSED}, ACTION_NAMES)
    return [*out, UNPARSED] if UNPARSED in present else out


def accuracy_block(vs: Sequence[Verdict]) -> dict[str, Any]:
    """n, acc (correct share; None without verdicts) and its Wilson 95% interval `ci95`."""
    n = len(vs)
    k = sum(1 for v in vs if v.correct)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "acc": _r(k / n) if n else None, "ci95": [_r(lo), _r(hi)]}


def _failure_block(group: Sequence[Verdict]) -> dict[str, Any]:
    """n, acc, ci95 of a group of verdicts of one expected action, with its most common wrong prediction."""
    block = accuracy_block(group)
    wrong = Counter(v.predicted_label for v in group if not v.correct)
    top = None
    if wrong:
        order = _label_order(wrong)
        top = max(order, key=lambda lab: (wrong[lab], -order.index(lab)))
    block["top_wrong"] = top
    block["top_wrong_rate"] = _r(wrong[top] / len(group)) if top is not None else None
    return block


def _asks_in(group: list[Verdict]) -> tuple[int, int, int, int]:
    """(asked, n) on the group's clarify cases, then on its call_tool cases: asked = answered with clarify."""
    c, t = ([v for v in group if v.expected == a] for a in (CLARIFY, CALL_TOOL))
    return sum(v.predicted == CLARIFY for v in c), len(c), sum(v.predicted == CLARIFY for v in t), len(t)


def score(verdicts: Iterable[Verdict]) -> dict[str, Any]:
    """The scores of one method's verdicts (see the module docstring)."""
    vs = list(verdicts)
    n = len(vs)
    by_action: dict[str, list[Verdict]] = {}
    by_category: dict[str, list[Verdict]] = {}
    for v in vs:
        by_action.setdefault(v.expected, []).append(v)
        by_category.setdefault(v.category, []).append(v)

    per_action: dict[str, Any] = {}
    confusion: dict[str, dict[str, int]] = {}
    for action in _ordered(by_action, ACTION_NAMES):
        group = by_action[action]
        per_action[action] = _failure_block(group)
        counts = Counter(v.predicted_label for v in group)
        confusion[action] = {lab: counts[lab] for lab in _label_order(counts)}

    category_order = (*CATEGORIES, *EXTERNAL_CATEGORIES)
    per_category = {c: accuracy_block(by_category[c]) for c in _ordered(by_category, category_order)}

    by_ambiguity: dict[str, list[Verdict]] = {}
    for v in by_action.get(CLARIFY, []):
        by_ambiguity.setdefault(str(v.meta.get("ambiguity", "unknown")), []).append(v)
    says_clarify = [v for v in vs if v.think_argues == CLARIFY]

    argued = [v for v in vs if v.think_argues is not None and v.think_argues != CALL_TOOL]
    mismatch = sum(1 for v in argued if v.predicted == CALL_TOOL) / len(argued) if argued else None

    checked = [v for v in vs if v.expected == CALL_TOOL and v.predicted == CALL_TOOL and v.tool_name_ok is not None]
    tool_acc = sum(1 for v in checked if v.tool_name_ok and v.arguments_ok) / len(checked) if checked else None
    name_acc = sum(1 for v in checked if v.tool_name_ok) / len(checked) if checked else None

    overall_asks = _asks_in(vs)

    macro = sum(sum(1 for v in g if v.correct) / len(g) for g in by_action.values()) / len(by_action) if n else None
    return {
        "n": n,
        "overall": _r(sum(1 for v in vs if v.correct) / n) if n else None,
        "macro_action": _r(macro),
        "per_action": per_action,
        "per_category": per_category,
        "confusion": confusion,
        "think_action_mismatch": _r(mismatch),
        "tool_name_accuracy": _r(name_acc),
        "tool_accuracy": _r(tool_acc),
        "unparsed_rate": _r(sum(1 for v in vs if v.predicted is None) / n) if n else None,
        "splits": sorted({v.split for v in vs}),
        "clarify_by_ambiguity": {k: _failure_block(by_ambiguity[k]) for k in sorted(by_ambiguity)},
        "think_says_clarify": {
            "n": len(says_clarify),
            "called_tool": sum(1 for v in says_clarify if v.predicted == CALL_TOOL),
        },
        "asks_where_it_should": {
            "clarify_cases": {"asked": overall_asks[0], "n": overall_asks[1]},
            "call_tool_cases": {"asked": overall_asks[2], "n": overall_asks[3]},
            # not rounded: 4 places would turn a p of 1e-7 into 0
            "p": rate_greater(*overall_asks),
            "p_within_category": rate_greater_within([_asks_in(g) for g in by_category.values()]),
        },
    }


def score_by_split(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """`score` of each split's verdicts, splits in SPLITS order then any others sorted."""
    groups: dict[str, list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault(v.split, []).append(v)
    return {s: score(groups[s]) for s in _ordered(groups, SPLITS)}
