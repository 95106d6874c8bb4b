"""What every importer shares: reading a benchmark's records, collecting problems, checking the built cases.

An importer reads the whole file, turns each record into a Case or into one Problem (file, line, field,
message), and either returns every case or raises one InputError with every problem: nothing partial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolprior.actions import ROLES, SPLITS, Action
from toolprior.case_io import MAX_PROBLEMS_PER_FILE
from toolprior.case_validation import case_from_dict
from toolprior.cases import Case, Message
from toolprior.errors import InputError, Problem
from toolprior.jsonl import parse_jsonl, read_text

# Every action that is not a tool call: what BFCL counts as correct where "no function call" is the gold.
NOT_CALLING: tuple[Action, ...] = tuple(a for a in Action if a is not Action.CALL_TOOL)


class RecordError(Exception):
    """One thing wrong with one record; `field` is a path into the record (`tools[2].parameters.type`)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Record:
    """One raw record of a benchmark file: its 1-based line (None for a JSON-array file) and its object."""

    line: int | None
    index: int
    data: dict[str, Any]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(
            Problem("<argument>", None, "split", f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        )


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Read a JSON-lines file (BFCL's `.json` files are JSON lines too) or a JSON array of objects.

    Raises InputError naming every broken line; blank lines are skipped; an empty file is an error."""
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(Problem(file, None, None, "no such file"))
    if not p.is_file():
        raise InputError(Problem(file, None, None, "not a file"))
    text = read_text(p)
    if text.lstrip().startswith("["):
        return _read_array(file, text)

    rows, problems = parse_jsonl(file, text)
    records: list[Record] = []
    for line_no, obj in rows:
        if not isinstance(obj, dict):
            problems.append(Problem(file, line_no, None, f"expected a JSON object per line, got {kind(obj)}"))
            continue
        records.append(Record(line=line_no, index=len(records), data=obj))
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line or 0)[:MAX_PROBLEMS_PER_FILE])
    if not records:
        raise InputError(Problem(file, None, None, "holds no records"))
    return records


def _read_array(file: str, text: str) -> list[Record]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(Problem(file, err.lineno, None, f"broken JSON: {err.msg} (column {err.colno})")) from None
    if not isinstance(items, list):
        raise InputError(Problem(file, None, None, f"expected JSON lines or an array of objects, got {kind(items)}"))
    problems = [
        Problem(file, None, f"[{i}]", f"expected a JSON object, got {kind(item)}")
        for i, item in enumerate(items)
        if not isinstance(item, dict)
    ]
    if problems:
        raise InputError(problems[:MAX_PROBLEMS_PER_FILE])
    if not items:
        raise InputError(Problem(file, None, None, "holds no records"))
    return [Record(line=None, index=i, data=item) for i, item in enumerate(items)]


def build_cases(path: str | os.PathLike[str], records: Sequence[Record], build: Callable[[Record], Case]) -> list[Case]:
    """Build one case per record; gather one problem per bad record, check every case against the project's
    schema, and check ids are unique. Returns all cases or raises InputError with every problem."""
    file = str(path)
    cases: list[Case] = []
    problems: list[Problem] = []
    first_line: dict[str, int | None] = {}
    for record in records:
        if len(problems) >= MAX_PROBLEMS_PER_FILE:
            break
        where = record.line
        prefix = "" if record.line is not None else f"[{record.index}]"
        try:
            case = build(record)
        except RecordError as err:
            field = f"{prefix}.{err.field}" if prefix and err.field else (prefix or err.field)
            problems.append(Problem(file, where, field, err.message))
            continue
        _, invalid = case_from_dict(case.to_dict(), file, where)
        if invalid:  # the importer built something the schema rejects: say where and why, never write it
            problems.extend(
                Problem(file, where, f"imported case {p.field}" if p.field else "imported case", p.message)
                for p in invalid
            )
            continue
        if case.id in first_line:
            seen = first_line[case.id]
            problems.append(Problem(file, where, None, f"duplicate case id {case.id!r} (also line {seen})"))
            continue
        first_line[case.id] = where
        cases.append(case)
    if problems:
        raise InputError(problems[:MAX_PROBLEMS_PER_FILE])
    return cases


# ---------------------------------------------------------------------------------------------- record fields


def require(data: dict[str, Any], key: str, field: str | None = None) -> Any:
    if key not in data:
        raise RecordError(field or key, "missing required field")
    return data[key]


def text(value: Any, field: str, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise RecordError(field, f"expected a string, got {kind(value)}")
    if nonempty and not value.strip():
        raise RecordError(field, "must be a non-empty string")
    return value


def string_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise RecordError(field, f"expected an array of strings, got {kind(value)}")
    for i, item in enumerate(value):
        text(item, f"{field}[{i}]")
    return list(value)


# Benchmarks' chat roles -> the project's roles (system / user / assistant / tool).
ROLE_MAP: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "model": "assistant",
    "gpt": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}


def chat_message(value: Any, field: str) -> Message:
    """One {role, content} message with its role mapped to the project's roles."""
    if not isinstance(value, dict):
        raise RecordError(field, f"expected a message object, got {kind(value)}")
    role = text(require(value, "role", f"{field}.role"), f"{field}.role")
    mapped = ROLE_MAP.get(role.lower())
    if mapped is None or mapped not in ROLES:
        raise RecordError(f"{field}.role", f"unknown role {role!r}; expected one of {', '.join(sorted(ROLE_MAP))}")
    content = text(require(value, "content", f"{field}.content"), f"{field}.content")
    name = value.get("name") if mapped == "tool" and isinstance(value.get("name"), str) and value["name"] else None
    return Message(role=mapped, content=content, name=name)


def kind(value: Any) -> str:
    """How a JSON value reads in a message: `an array`, `a string`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
