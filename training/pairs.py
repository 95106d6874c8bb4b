"""SimPO preference pairs mined from the agent's own failures on the `mine` split.

    pairs = mine_pairs(read_case_files(["runs/data/mine.jsonl"]), read_verdicts("runs/verdicts/mine.jsonl"),
                       eval_cases=read_case_files(["runs/data/eval.jsonl", "runs/data/eval_novel.jsonl"]))
    write_pairs("runs/pairs.jsonl", pairs)
    print(pair_stats(pairs))

One pair per failed verdict (`correct` false), as in the case study:

- prompt: the case's chat messages and tools (TRL's conversational preference format: `prompt` a list of
  messages, `chosen` / `rejected` a list holding one assistant message; tools ride along as their own field);
- rejected: the agent's failed output, verbatim (the mess is the lesson);
- chosen: the corrected turn. When the agent's own think block argued for the right action (judged by
  `toolprior.think_judge.RuleThinkJudge`, or the `judge` given), the chosen turn keeps that think and appends the gold
  action block (content or tool calls), so chosen and rejected share the reasoning and differ in whether the action
  follows it (`chosen_source` "own_think"). Otherwise the chosen turn is the gold turn, think and action ("gold").
  For call_tool, an own think that names a tool of the case the gold does not call falls back to the gold turn.

Quality checks, each counted in `PairSet.counts`: a verdict whose case has no gold turn is skipped (`no_gold`); a
chosen turn that does not parse cleanly with `parse_turn` (any problem, or an action other than the gold's) is
replaced by the gold turn when it was the own-think version (`own_think_fallback`) and dropped otherwise
(`unparseable`); a pair whose chosen equals its rejected is dropped (`identical`); the same (case, rejected) twice
is kept once (`duplicate`).

No eval case reaches training: a failure whose case is in `eval` / `eval_novel` (its split field, or its id among
the `eval_cases` given), whose twin is, or that an eval case names as its twin, is refused with an `InputError`
naming the case id and split. So are failures on splits outside `allowed_splits` (only `mine` by default: train
and val failures are cases the agent was trained or early-stopped on, and mixing them in would blur what the
pairs measure). `read_pairs` refuses a pairs file holding an eval-split pair, and the trainers check the pairs
again against the eval case files of their config before training.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolprior.actions import ACTION_NAMES, HELD_OUT_SPLITS, ROLES, SPLITS
from toolprior.atomic import atomic_open
from toolprior.cases import Case
from toolprior.errors import InputError, Problem
from toolprior.jsonl import read_jsonl

if TYPE_CHECKING:
    pass

OWN_THINK = "own_think"
GOLD = "gold"
CHOSEN_SOURCES: tuple[str, ...] = (OWN_THINK, GOLD)
UNPARSED = "unparsed"  # rejected_action of an output that did not parse (as evals.verdicts.UNPARSED)
DEFAULT_ALLOWED_SPLITS: tuple[str, ...] = ("mine",)
COUNT_KEYS: tuple[str, ...] = (
    "verdicts",
    "correct",
    "failures",
    "no_gold",
    "own_think_fallback",
    "unparseable",
    "identical",
    "duplicate",
    "kept",
)
PAIR_KEYS: tuple[str, ...] = (
    "id",
    "category",
    "split",
    "twin",
    "expected_action",
    "rejected_action",
    "chosen_source",
    "think_argues",
    "prompt",
    "tools",
    "chosen",
    "rejected",
)
SHOW_IDS = 5  # ids named in one leakage message


@dataclass(frozen=True)
class Pair:
    """One preference pair. `prompt` is the case's chat messages, `tools` its tool dicts, `chosen` / `rejected` one
    assistant message each; `rejected_action` is the action the agent took ("unparsed" when none parsed)."""

    id: str
    category: str
    split: str
    expected_action: str
    rejected_action: str
    chosen_source: str
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    chosen: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    twin: str | None = None
    think_argues: str | None = None

    @property
    def chosen_text(self) -> str:
        return str(self.chosen[0]["content"])

    @property
    def rejected_text(self) -> str:
        return str(self.rejected[0]["content"])

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PAIR_KEYS}

    def trl_row(self) -> dict[str, Any]:
        """The row TRL's preference trainers take (conversational; tools as a JSON string, as in SFT rows)."""
        return {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "tools": json.dumps(self.tools, ensure_ascii=False),
        }


@dataclass
class PairSet:
    """The mined pairs and what happened to every verdict (`counts`, keys in COUNT_KEYS order)."""

    pairs: list[Pair]
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs)

    def __getitem__(self, index: int) -> Pair:
        return self.pairs[index]


# ------------------------------------------------------------------------------------------------------- leakage


def held_out_index(cases: Iterable[Case], eval_cases: Iterable[Case] = ()) -> dict[str, str]:
    """id -> split of every held-out case: cases whose split is eval / eval_novel, and every case of `eval_cases`
    (whatever its split field says: a file given as held out is held out)."""
    index: dict[str, str] = {}
    for case in eval_cases:
        index[case.id] = case.split if case.split in HELD_OUT_SPLITS else f"{case.split}, given as held out"
    for case in cases:
        if case.split in HELD_OUT_SPLITS:
            index.setdefault(case.id, case.split)
    return index


def twins_of(cases: Iterable[Case]) -> dict[str, str]:
    """twin id -> the id of the case naming it (reverse links: an eval case may name a mine case as its twin)."""
    return {c.twin: c.id for c in cases if c.twin}


def leakage_reason(
    case_id: str, split: str, twin: str | None, held_out: Mapping[str, str], named_by: Mapping[str, str]
) -> str | None:
    """Why a pair on this case would put a held-out case into training, or None."""
    if split in HELD_OUT_SPLITS:
        return f"{case_id} is a held-out case (split {split})"
    if case_id in held_out:
        return f"{case_id} (split {split}) is among the held-out eval cases (split {held_out[case_id]})"
    if twin and twin in held_out:
        return f"{case_id} (split {split}) has its twin {twin} in {held_out[twin]}"
    if case_id in named_by and named_by[case_id] in held_out:
        other = named_by[case_id]
        return f"{case_id} (split {split}) is the twin of {other} in {held_out[other]}"
    return None


def leak_error(source: str, reasons: list[str]) -> InputError:
    shown = "; ".join(reasons[:SHOW_IDS]) + (f"; and {len(reasons) - SHOW_IDS} more" if len(reasons) > SHOW_IDS else "")
    n = len(reasons)
    return InputError(
        Problem(source, None, None, f"refusing {n} pair{'s' if n != 1 else ''} that would train on eval cases: {shown}")
    )


def check_no_leak(pairs: Iterable[Pair], eval_cases: Iterable[Case], source: str = "<pairs>") -> None:
    """Raise InputError when any pair's case, or its twin, is held out (see `held_out_index`)."""
    eval_cases = list(eval_cases)
    held_out = held_out_index((), eval_cases)
    named_by = twins_of(eval_cases)
    reasons = [r for p in pairs if (r := leakage_reason(p.id, p.split, p.twin, held_out, named_by)) is not None]
    if reasons:
        raise leak_error(source, reasons)


def check_allowed(allowed_splits: Sequence[str]) -> tuple[str, ...]:
    allowed = tuple(allowed_splits)
    bad = [s for s in allowed if s not in SPLITS]
    if bad:
        raise InputError(f"unknown split(s) {', '.join(map(repr, bad))}; splits are {', '.join(SPLITS)}")
    held = [s for s in allowed if s in HELD_OUT_SPLITS]
    if held:
        raise InputError(
            f"pairs may never come from held-out splits ({', '.join(held)}): eval cases must not reach training"
        )
    if not allowed:
        raise InputError("allowed_splits is empty")
    return allowed


# ------------------------------------------------------------------------------------------------------------ I/O


def write_pairs(path: str | os.PathLike[str], pairs: Iterable[Pair]) -> int:
    """Write pairs as JSONL atomically (one object per line, keys in PAIR_KEYS order); returns the count."""
    n = 0
    with atomic_open(path, "w") as f:
        for pair in pairs:
            f.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def _message_problems(value: Any, name: str, assistant_only: bool) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        return [(name, "expected a non-empty array of messages")]
    if assistant_only and len(value) != 1:
        return [(name, f"expected exactly one assistant message, got {len(value)}")]
    out: list[tuple[str, str]] = []
    for i, m in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(m, dict):
            out.append((where, "expected an object with role and content"))
            continue
        role = m.get("role")
        if role not in ROLES:
            out.append((f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}"))
        elif assistant_only and role != "assistant":
            out.append((f"{where}.role", f"expected 'assistant', got {role!r}"))
        if not isinstance(m.get("content"), str):
            out.append((f"{where}.content", "expected a string"))
        if "name" in m and m["name"] is not None and not isinstance(m["name"], str):
            out.append((f"{where}.name", "expected a string"))
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            out.append((where, f"unknown key(s) {', '.join(map(repr, extra))}"))
    return out


def _pair_problems(obj: Any) -> list[tuple[str | None, str]]:
    if not isinstance(obj, dict):
        return [(None, f"expected a JSON object, got {type(obj).__name__}")]
    out: list[tuple[str | None, str]] = []
    for key in ("id", "category", "split", "expected_action", "rejected_action", "chosen_source"):
        if key not in obj:
            out.append((key, "missing"))
        elif not isinstance(obj[key], str) or not obj[key]:
            out.append((key, "expected a non-empty string"))
    for key in ("twin", "think_argues"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            out.append((key, "expected a string or null"))
    if isinstance(obj.get("split"), str) and obj["split"] in HELD_OUT_SPLITS:
        out.append(
            ("split", f"{obj.get('id')!r} is a held-out case ({obj['split']}): eval cases must never reach training")
        )
    elif isinstance(obj.get("split"), str) and obj["split"] not in SPLITS:
        out.append(("split", f"expected one of {', '.join(SPLITS)}, got {obj['split']!r}"))
    if isinstance(obj.get("expected_action"), str) and obj["expected_action"] not in ACTION_NAMES:
        out.append(("expected_action", f"expected one of {', '.join(ACTION_NAMES)}, got {obj['expected_action']!r}"))
    if isinstance(obj.get("rejected_action"), str) and obj["rejected_action"] not in (*ACTION_NAMES, UNPARSED):
        out.append(("rejected_action", f"expected an action or {UNPARSED!r}, got {obj['rejected_action']!r}"))
    if isinstance(obj.get("chosen_source"), str) and obj["chosen_source"] not in CHOSEN_SOURCES:
        out.append(("chosen_source", f"expected one of {', '.join(CHOSEN_SOURCES)}, got {obj['chosen_source']!r}"))
    for key in ("prompt", "chosen", "rejected"):
        if key not in obj:
            out.append((key, "missing"))
        else:
            out.extend(_message_problems(obj[key], key, assistant_only=key != "prompt"))
    tools = obj.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        out.append(("tools", "expected an array of tool objects with a name"))
    extra = sorted(set(obj) - set(PAIR_KEYS))
    if extra:
        out.append((None, f"unknown key(s) {', '.join(map(repr, extra))}"))
    return out


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Read and validate a pairs JSONL file. Raises InputError with `file:line: field: message` for every problem
    (a held-out split among them); nothing is returned partially. Blank lines are skipped."""
    file = os.fspath(path)
    rows, problems = read_jsonl(path)
    pairs: list[Pair] = []
    for line_no, obj in rows:
        found = _pair_problems(obj)
        if found:
            problems.extend(Problem(file, line_no, name, message) for name, message in found)
            continue
        pairs.append(
            Pair(
                id=obj["id"],
                category=obj["category"],
                split=obj["split"],
                expected_action=obj["expected_action"],
                rejected_action=obj["rejected_action"],
                chosen_source=obj["chosen_source"],
                prompt=obj["prompt"],
                tools=obj.get("tools", []),
                chosen=obj["chosen"],
                rejected=obj["rejected"],
                twin=obj.get("twin"),
                think_argues=obj.get("think_argues"),
            )
        )
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line or 0))
    if not pairs:
        raise InputError(Problem(file, None, None, "no pairs (the file is empty)"))
    return pairs


# ---------------------------------------------------------------------------------------------------------- stats


def pair_stats(pairs: PairSet | Iterable[Pair]) -> str:
    """Counts per category and per expected action (with the action the agent took instead), and for a PairSet
    what happened to every verdict."""
    lines: list[str] = []
    if isinstance(pairs, PairSet):
        c = pairs.counts
        dropped = ", ".join(
            f"{c[k]} {k.replace('_', ' ')}" for k in ("no_gold", "unparseable", "identical", "duplicate") if c.get(k)
        )
        lines.append(
            f"pairs: {c.get('kept', len(pairs))} from {c.get('failures', 0)} failures among {c.get('verdicts', 0)} verdicts"
            + (f" (dropped: {dropped})" if dropped else "")
        )
        if c.get("own_think_fallback"):
            lines.append(f"own think replaced by the gold think (chosen did not parse): {c['own_think_fallback']}")
        items = pairs.pairs
    else:
        items = list(pairs)
        lines.append(f"pairs: {len(items)}")
    sources = Counter(p.chosen_source for p in items)
    lines.append("chosen: " + ", ".join(f"{sources.get(s, 0)} {s}" for s in CHOSEN_SOURCES))
    if not items:
        return "\n".join(lines) + "\n"
    by_cat = Counter(p.category for p in items)
    width = max(len("category"), *(len(k) for k in by_cat))
    lines += ["", f"{'category':<{width}}  pairs"]
    lines += [f"{cat:<{width}}  {n:>5}" for cat, n in sorted(by_cat.items(), key=lambda kv: (-kv[1], kv[0]))]
    by_action = Counter(p.expected_action for p in items)
    lines += ["", f"{'expected action':<16}  pairs  share  most rejected as"]
    for action in [a for a in ACTION_NAMES if a in by_action]:
        took = Counter(p.rejected_action for p in items if p.expected_action == action).most_common(1)[0]
        lines.append(
            f"{action:<16}  {by_action[action]:>5}  {by_action[action] / len(items):>5.0%}  {took[0]} ({took[1]})"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "CHOSEN_SOURCES",
    "COUNT_KEYS",
    "DEFAULT_ALLOWED_SPLITS",
    "GOLD",
    "OWN_THINK",
    "Pair",
    "PairSet",
    "check_no_leak",
    "held_out_index",
    "leakage_reason",
    "pair_stats",
    "read_pairs",
    "write_pairs",
]
