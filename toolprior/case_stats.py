"""Summaries of a set of cases: the action x category table and surface-diversity figures.

`toolprior data stats FILE...` prints `format_stats(cases)`. The diversity figures say whether a model could learn
the label from the surface instead of the situation: how many distinct user texts, templates and thinks there are,
how varied the user vocabulary is, and how the clarify cases split by ambiguity type.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Sequence

from toolprior.actions import ACTION_NAMES, CATEGORIES, SPLITS
from toolprior.cases import Case

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_SHORT = {
    "call_tool": "call",
    "answer_directly": "answer",
    "clarify": "clarify",
    "escalate": "escalate",
    "refuse": "refuse",
}


def last_user_text(case: Case) -> str:
    """The user message the case's decision answers (the last one in the prompt)."""
    return next((m.content for m in reversed(case.messages) if m.role == "user"), "")


def prompt_chars(case: Case, *, with_tools: bool = False) -> int:
    """Characters of every prompt message's content (plus the tools' JSON with `with_tools`)."""
    n = sum(len(m.content) for m in case.messages)
    if with_tools:
        n += sum(len(json.dumps(t.to_dict(), ensure_ascii=False)) for t in case.tools)
    return n


def _table(rows: list[tuple[str, Counter[str]]], columns: Sequence[str], label: str) -> list[str]:
    """Rows of counts with row percentages; a total row at the end."""
    width = max([len(label), *(len(name) for name, _ in rows), len("total")]) + 2
    head = f"{label:<{width}}{'n':>6}" + "".join(f"{_SHORT.get(c, c):>14}" for c in columns)
    lines = [head]
    total: Counter[str] = Counter()
    for name, counts in [*rows, ("total", None)]:
        if counts is None:
            counts = total
        else:
            total.update(counts)
        n = sum(counts[c] for c in columns)
        cells = "".join(
            f"{counts[c]:>7} {100 * counts[c] / n:>4.0f}%  " if n else f"{0:>7} {'-':>5}  " for c in columns
        )
        lines.append(f"{name:<{width}}{n:>6}{cells}".rstrip())
    return lines


def format_stats(cases: Sequence[Case]) -> str:
    """A plain-text report: cases per split x action (when several splits), action x category with row %, and
    surface-diversity figures."""
    if not cases:
        return "no cases\n"
    lines: list[str] = [f"{len(cases)} cases"]

    splits = [s for s in SPLITS if any(c.split == s for c in cases)]
    splits += sorted({c.split for c in cases} - set(splits))
    if len(splits) > 1:
        lines += ["", "split x action"]
        rows = [(s, Counter(c.expected_action.value for c in cases if c.split == s)) for s in splits]
        lines += _table(rows, ACTION_NAMES, "split")

    categories = [k for k in CATEGORIES if any(c.category == k for c in cases)]
    categories += sorted({c.category for c in cases} - set(categories))
    lines += ["", "category x action (count, row %)"]
    rows = [(k, Counter(c.expected_action.value for c in cases if c.category == k)) for k in categories]
    lines += _table(rows, ACTION_NAMES, "category")

    users = [last_user_text(c) for c in cases]
    thinks = [c.gold.think for c in cases if c.gold is not None]
    tokens = [w for text in users for w in _WORD.findall(text.lower())]
    lengths = [prompt_chars(c) for c in cases]
    lengths_tools = [prompt_chars(c, with_tools=True) for c in cases]
    templates = Counter(c.template for c in cases)
    template_actions: dict[str, set[str]] = {}
    for c in cases:
        template_actions.setdefault(c.template, set()).add(c.expected_action.value)
    multi_action = sum(1 for acts in template_actions.values() if len(acts) > 1)
    offered = {t.name for c in cases for t in c.tools}
    called = {call.name for c in cases if c.gold is not None for call in c.gold.tool_calls}
    twins = sum(1 for c in cases if c.twin)

    lines += ["", "surface diversity"]
    lines.append(
        f"  distinct user texts      {len(set(users))} of {len(users)} ({100 * len(set(users)) / len(users):.0f}%)"
    )
    lines.append(f"  distinct templates       {len(templates)} ({multi_action} used by more than one action)")
    lines.append(f"  distinct think texts     {len(set(thinks))} of {len(thinks)}")
    ttr = len(set(tokens)) / len(tokens) if tokens else 0.0
    lines.append(f"  user type/token ratio    {ttr:.3f} ({len(set(tokens))} types / {len(tokens)} tokens)")
    lines.append(
        f"  prompt chars             mean {statistics.mean(lengths):.0f}, median {statistics.median(lengths):.0f}"
        f" (with tools: mean {statistics.mean(lengths_tools):.0f}, median {statistics.median(lengths_tools):.0f})"
    )
    lines.append(f"  tool names               {len(offered)} offered, {len(called)} called in gold turns")
    lines.append(f"  domains                  {len({c.meta.get('domain') for c in cases if c.meta.get('domain')})}")
    lines.append(f"  twin cases               {twins}")

    clarify = [c for c in cases if c.expected_action.value == "clarify"]
    if clarify:
        amb = Counter(str(c.meta.get("ambiguity", "unknown")) for c in clarify)
        parts = ", ".join(f"{k} {100 * n / len(clarify):.0f}% ({n})" for k, n in amb.most_common())
        lines.append(f"  clarify by ambiguity     {parts}")
    return "\n".join(lines) + "\n"
