"""One scored case (`Verdict`) and its JSONL I/O: the record every evaluation writes and the preference-pair miner,
forensics and reports read. How a parsed turn is judged lives in `evals.verdicts`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from toolprior.atomic import atomic_open
from toolprior.errors import InputError, Problem
from toolprior.jsonl import read_jsonl

UNPARSED = "unparsed"  # the label of a prediction that could not be parsed (Verdict.predicted is None)


@dataclass
class Verdict:
    """One scored case. `predicted` is None when the output could not be parsed; `tool_name_ok` / `arguments_ok`
    are None when no tool call was checked (see the module docstring); `turns` is the whole multi-turn transcript
    as role/content dicts (empty for single-turn); `think_argues` is the action the think block argues for, filled
    in by forensics (None until then)."""

    id: str
    category: str
    split: str
    expected: str
    acceptable: list[str]
    predicted: str | None
    correct: bool
    output: str = ""
    think: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_name_ok: bool | None = None
    arguments_ok: bool | None = None
    problems: list[str] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    think_argues: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def predicted_label(self) -> str:
        """The predicted action, or "unparsed" when there is none."""
        return self.predicted if self.predicted is not None else UNPARSED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Verdict:
        """Build a Verdict from its dict; unknown keys are ignored, a missing required key is a KeyError and a
        wrongly typed field a TypeError (both name the field)."""
        if not isinstance(obj, Mapping):
            raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in obj:
                kwargs[f.name] = obj[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                raise KeyError(f.name)
        _check_types(kwargs)
        return cls(**kwargs)


_STR_FIELDS = ("id", "category", "split", "expected", "output")
_OPT_STR_FIELDS = ("predicted", "think", "think_argues")
_OPT_BOOL_FIELDS = ("tool_name_ok", "arguments_ok")
_LIST_FIELDS = ("acceptable", "tool_calls", "problems", "turns")


def _check_types(kw: Mapping[str, Any]) -> None:
    for name in _STR_FIELDS:
        if name in kw and not isinstance(kw[name], str):
            raise TypeError(f"{name}: expected a string, got {type(kw[name]).__name__}")
    for name in _OPT_STR_FIELDS:
        if kw.get(name) is not None and not isinstance(kw[name], str):
            raise TypeError(f"{name}: expected a string or null, got {type(kw[name]).__name__}")
    for name in _OPT_BOOL_FIELDS:
        if kw.get(name) is not None and not isinstance(kw[name], bool):
            raise TypeError(f"{name}: expected true, false or null, got {type(kw[name]).__name__}")
    if "correct" in kw and not isinstance(kw["correct"], bool):
        raise TypeError(f"correct: expected true or false, got {type(kw['correct']).__name__}")
    for name in _LIST_FIELDS:
        if name in kw and not isinstance(kw[name], list):
            raise TypeError(f"{name}: expected an array, got {type(kw[name]).__name__}")
    if "meta" in kw and not isinstance(kw["meta"], dict):
        raise TypeError(f"meta: expected an object, got {type(kw['meta']).__name__}")


def write_verdicts(path: str | os.PathLike[str], verdicts: Iterable[Verdict]) -> int:
    """Write one JSON object per line, atomically (the file appears whole or not at all). Returns the count."""
    n = 0
    with atomic_open(path) as f:
        for v in verdicts:
            f.write(json.dumps(v.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_verdicts(path: str | os.PathLike[str]) -> list[Verdict]:
    """Read a verdicts JSONL file. Raises InputError naming the file, line and field of every broken line;
    nothing is returned partially. Blank lines are skipped."""
    file = str(path)
    rows, problems = read_jsonl(path)
    out: list[Verdict] = []
    for line_no, obj in rows:
        try:
            out.append(Verdict.from_dict(obj))
        except KeyError as e:
            problems.append(Problem(file, line_no, str(e.args[0]), "missing"))
        except TypeError as e:
            msg = str(e)
            name, _, rest = msg.partition(": ")
            problems.append(Problem(file, line_no, name if rest else None, rest or msg))
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line or 0))
    return out
