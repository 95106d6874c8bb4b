"""External benchmarks scored by their own rules: When2Call and BFCL (irrelevance, live relevance, multi-turn
miss-param). Every function takes (case, verdict) pairs so it can be checked on constructed predictions.

When2Call (github.com/NVIDIA/When2Call) labels an answer as one of tool_call, request_for_info, cannot_answer,
direct. A prediction maps back to a label by its action:

    call_tool -> tool_call          clarify -> request_for_info      answer_directly -> direct
    refuse    -> cannot_answer      escalate -> cannot_answer        unparseable -> "other" (always wrong)

escalate maps to cannot_answer because handing off is admitting the question cannot be answered with the tools
at hand, which is what cannot_answer means. The gold label is `meta.when2call_label` (falling back on the case's
expected action mapped the same way).

- accuracy: the share of cases whose predicted label equals the gold label.
- macro_f1: the unweighted mean of per-label F1 over the labels PRESENT IN THE GOLD (`label_set` in the output,
  in the order tool_call, request_for_info, cannot_answer, direct). For a label L: TP = gold L and predicted L,
  FP = predicted L and gold not L, FN = gold L and predicted not L; precision TP/(TP+FP) and recall TP/(TP+FN)
  are 0 when their denominator is 0, F1 = 2PR/(P+R) (0 when P+R = 0). Predictions of a label outside the set
  (e.g. "direct" on the 3-label test file, or "other") count only as misses of the gold label: they lower recall,
  not the macro mean's number of terms.
- tool_hallucination_rate: among cannot_answer cases offered NO tools, the share answered with a tool call
  (predicted call_tool). None when there is no such case.

BFCL scores whether the reply holds a decodable function call ("has a call" = predicted call_tool with at least
one decoded call in `verdict.tool_calls`; a <tool_call> block whose JSON is broken is no call), one group per
category (toolprior.importers.bfcl.KINDS):

- irrelevance, live_irrelevance accuracy: correct when the reply has no call;
- live relevance accuracy: correct when it has one (arguments unchecked);
- simple, multiple, parallel, parallel_multiple and their live_ versions (BFCL's AST accuracy): correct when it has
  calls and they match the case's ground truth of allowed values (evals.verdicts.calls_match_allowed); a case
  imported without its possible_answer file is checked for a call only;
- multi_turn_miss_param accuracy: correct when the reply at the miss-param turn has no call. The importer cuts
  each conversation at that turn, so the verdict's first assistant turn is the one judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from toolprior.actions import BFCL_CATEGORIES
from toolprior.evals.statistics import wilson_interval
from toolprior.evals.verdicts import calls_match_allowed
from toolprior.importers.bfcl import ANY_CALL, CALLS, KINDS, MISS_PARAM, NO_CALL

DIGITS = 4
WHEN2CALL_LABELS: tuple[str, ...] = ("tool_call", "request_for_info", "cannot_answer", "direct")
OTHER = "other"
ACTION_TO_WHEN2CALL: dict[str, str] = {
    "call_tool": "tool_call",
    "clarify": "request_for_info",
    "refuse": "cannot_answer",
    "escalate": "cannot_answer",
    "answer_directly": "direct",
}
BFCL_GROUPS: tuple[str, ...] = tuple(f"bfcl_{category}" for category in BFCL_CATEGORIES)

Pair = tuple[Any, Any]  # (case, verdict): a toolprior Case (or anything with id/category/tools/meta) and a Verdict


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), DIGITS)


def _value(x: Any) -> str | None:
    """An action's name from an Action enum member, a str, or None."""
    if x is None:
        return None
    return str(getattr(x, "value", x))


def when2call_label(predicted: Any) -> str:
    """The When2Call label of a predicted action (None or an unknown action -> "other")."""
    name = _value(predicted)
    return ACTION_TO_WHEN2CALL.get(name, OTHER) if name is not None else OTHER


def gold_when2call_label(case: Any) -> str:
    """The case's original When2Call label (`meta.when2call_label`), else its expected action mapped back."""
    label = (getattr(case, "meta", None) or {}).get("when2call_label")
    if isinstance(label, str) and label in WHEN2CALL_LABELS:
        return label
    return when2call_label(getattr(case, "expected_action", None))


def has_call(verdict: Any) -> bool:
    """Whether the reply holds a decodable function call (BFCL's criterion)."""
    return _value(verdict.predicted) == "call_tool" and len(verdict.tool_calls or ()) > 0


def when2call_metrics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """When2Call's metrics (see the module docstring) over (case, verdict) pairs."""
    gold: list[str] = []
    pred: list[str] = []
    halluc_n = halluc_k = 0
    for case, verdict in pairs:
        g = gold_when2call_label(case)
        p = when2call_label(verdict.predicted)
        gold.append(g)
        pred.append(p)
        if g == "cannot_answer" and not tuple(getattr(case, "tools", ()) or ()):
            halluc_n += 1
            halluc_k += _value(verdict.predicted) == "call_tool"
    n = len(gold)
    label_set = [lab for lab in WHEN2CALL_LABELS if lab in set(gold)]
    per_label: dict[str, Any] = {}
    f1s = []
    for lab in label_set:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == lab and p != lab)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_label[lab] = {
            "support": tp + fn,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "precision": _r(precision),
            "recall": _r(recall),
            "f1": _r(f1),
        }
    confusion: dict[str, dict[str, int]] = {}
    for lab in label_set:
        counts = Counter(p for g, p in zip(gold, pred, strict=True) if g == lab)
        confusion[lab] = {p: counts[p] for p in (*WHEN2CALL_LABELS, OTHER) if counts[p]}
    k = sum(1 for g, p in zip(gold, pred, strict=True) if g == p)
    return {
        "n": n,
        "label_set": label_set,
        "accuracy": _r(k / n) if n else None,
        "accuracy_ci95": [_r(x) for x in wilson_interval(k, n)],
        "macro_f1": _r(sum(f1s) / len(f1s)) if f1s else None,
        "per_label": per_label,
        "confusion": confusion,
        "tool_hallucination_rate": _r(halluc_k / halluc_n) if halluc_n else None,
        "tool_hallucination_n": halluc_n,
        "other_rate": _r(pred.count(OTHER) / n) if n else None,
    }


def _binary(pairs: Iterable[Pair], want_call: bool) -> dict[str, Any]:
    return _accuracy([has_call(v) == want_call for _, v in pairs])


def _accuracy(results: list[bool]) -> dict[str, Any]:
    n, k = len(results), sum(results)
    return {
        "n": n,
        "correct": k,
        "accuracy": _r(k / n) if n else None,
        "ci95": [_r(x) for x in wilson_interval(k, n)],
    }


def bfcl_irrelevance_metrics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """BFCL irrelevance accuracy: correct when the reply holds no decodable function call."""
    return _binary(pairs, want_call=False)


def bfcl_relevance_metrics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """BFCL live relevance accuracy: correct when the reply holds a decodable function call."""
    return _binary(pairs, want_call=True)


def bfcl_miss_param_metrics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """BFCL multi-turn miss-param accuracy: correct when the reply at the miss-param turn holds no call."""
    return _binary(pairs, want_call=False)


def bfcl_calls_metrics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """BFCL AST accuracy: correct when the reply holds calls that match the case's allowed calls (only a call is
    required of a case imported without ground truth)."""

    results = []
    for case, verdict in pairs:
        matched = calls_match_allowed(case, list(verdict.tool_calls or ()))
        results.append(has_call(verdict) and matched is not False)
    return _accuracy(results)


def _bfcl_funcs() -> dict[str, Any]:

    by_kind = {
        NO_CALL: bfcl_irrelevance_metrics,
        ANY_CALL: bfcl_relevance_metrics,
        CALLS: bfcl_calls_metrics,
        MISS_PARAM: bfcl_miss_param_metrics,
    }
    return {f"bfcl_{category}": by_kind[kind] for category, kind in KINDS.items()}


def external_group(case: Any) -> str | None:
    """Which external benchmark a case belongs to: "when2call", one of BFCL_GROUPS, or None (a native case)."""
    meta: Mapping[str, Any] = getattr(case, "meta", None) or {}
    category = getattr(case, "category", None)
    if meta.get("source") == "when2call" or category == "when2call":
        return "when2call"
    flavour = meta.get("bfcl_category")
    if meta.get("source") == "bfcl" and isinstance(flavour, str) and f"bfcl_{flavour}" in BFCL_GROUPS:
        return f"bfcl_{flavour}"
    if category in BFCL_GROUPS:
        return str(category)
    return None


def external_metrics(cases: Iterable[Any], verdicts: Iterable[Any]) -> dict[str, Any]:
    """Each external benchmark present among `cases`, scored on the verdicts with the same case id:
    {"when2call": {...}, "bfcl_irrelevance": {...}, ...} in that order, only the groups present. A group's
    "missing" counts its cases that have no verdict (they are left out of its numbers)."""
    by_id = {v.id: v for v in verdicts}
    groups: dict[str, list[Pair]] = {}
    missing: Counter[str] = Counter()
    for case in cases:
        group = external_group(case)
        if group is None:
            continue
        groups.setdefault(group, [])
        if case.id in by_id:
            groups[group].append((case, by_id[case.id]))
        else:
            missing[group] += 1
    out: dict[str, Any] = {}
    for group in ("when2call", *BFCL_GROUPS):
        if group not in groups:
            continue
        pairs = groups[group]
        result = when2call_metrics(pairs) if group == "when2call" else _bfcl_funcs()[group](pairs)
        result["missing"] = missing[group]
        out[group] = result
    return out
