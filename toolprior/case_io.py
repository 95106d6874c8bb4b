"""Reading and writing case JSONL files, with validation.

Reading never returns a partial result: every problem of every file is collected (file, line, field, message)
and raised together as one `InputError`. Field names are paths into the case: `messages[1].role`,
`tools[0].parameters.properties.shipment_id`, `gold.tool_calls[0].name`, `followups[0].content`.

>>> cases = read_cases("data/eval.jsonl")            # one file
>>> cases = read_case_files(["a.jsonl", "b.jsonl"])  # several, ids unique across them
>>> by_split = read_splits("data/")                  # train/val/mine/eval/eval_novel.jsonl

One raw case is validated by `toolprior.case_validation.case_from_dict`; this module reads files line by line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from toolprior.actions import SPLITS
from toolprior.atomic import atomic_open
from toolprior.case_validation import case_from_dict
from toolprior.cases import Case
from toolprior.errors import InputError, Problem

MAX_PROBLEMS_PER_FILE = 200

_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------------------------------------------- writing


def case_to_json(case: Case) -> str:
    """One JSONL line (no newline), UTF-8 text kept as is, keys in schema order."""
    return json.dumps(case.to_dict(), ensure_ascii=False)


def write_cases(path: str | os.PathLike[str], cases: Iterable[Case]) -> int:
    """Write cases as JSONL atomically; returns how many were written."""
    n = 0
    with atomic_open(path, "w") as f:
        for case in cases:
            f.write(case_to_json(case) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------------------------------------------- reading


def read_cases(path: str | os.PathLike[str]) -> list[Case]:
    """Read and validate one case JSONL file; raise `InputError` with every problem of the file if any."""
    scan = _scan_file(path)
    if scan.problems:
        raise InputError(_capped(scan.file, scan.problems))
    return [case for _, case in scan.cases]


def read_case_files(paths: Sequence[str | os.PathLike[str]]) -> list[Case]:
    """Read and validate several case files (cases in file order); ids must be unique across all of them.

    Raises `InputError` with every problem of every file, including ids repeated across files."""
    scans = _scan_files(paths)
    problems = [p for scan in scans for p in _capped(scan.file, scan.problems)]
    if problems:
        raise InputError(problems)
    return [case for scan in scans for _, case in scan.cases]


def read_splits(directory: str | os.PathLike[str]) -> dict[str, list[Case]]:
    """Read `<split>.jsonl` for each of the five splits in `directory`, keyed by split in SPLITS order.

    Every split file must exist, ids must be unique across splits, and each case's `split` field must match its
    file. Raises `InputError` with every problem found."""
    folder = Path(directory)
    dir_name = os.fspath(directory)
    if not folder.exists():
        raise InputError(Problem(dir_name, None, None, "folder not found"))
    if not folder.is_dir():
        raise InputError(Problem(dir_name, None, None, "not a folder (expected one holding <split>.jsonl files)"))
    paths = [folder / f"{split}.jsonl" for split in SPLITS]
    missing = [
        Problem(str(p), None, None, f"missing split file (a split folder holds {', '.join(SPLITS)} .jsonl)")
        for p in paths
        if not p.exists()
    ]
    scans = _scan_files([p for p in paths if p.exists()])
    for scan in scans:
        split = Path(scan.file).name.removesuffix(".jsonl")
        for line, case in scan.cases:
            if case.split != split:
                scan.problems.append(
                    Problem(scan.file, line, "split", f"{case.split!r} does not match its file (expected {split!r})")
                )
    problems = missing + [p for scan in scans for p in _capped(scan.file, scan.problems)]
    if problems:
        raise InputError(problems)
    found = {Path(scan.file).name.removesuffix(".jsonl"): [c for _, c in scan.cases] for scan in scans}
    return {split: found[split] for split in SPLITS}


class _Scan:
    """What reading one file found: the valid cases with their line numbers, every problem, and every id seen."""

    def __init__(self, file: str):
        self.file = file
        self.cases: list[tuple[int, Case]] = []
        self.problems: list[Problem] = []
        self.ids: list[tuple[str, int]] = []  # (id, line) for every line with a usable id, valid case or not


def _capped(file: str, problems: list[Problem]) -> list[Problem]:
    """One file's problems in line order (whole-file ones first), at most MAX_PROBLEMS_PER_FILE and a count."""
    problems = sorted(problems, key=lambda p: (p.line is not None, p.line or 0))
    if len(problems) <= MAX_PROBLEMS_PER_FILE:
        return problems
    more = len(problems) - MAX_PROBLEMS_PER_FILE
    return [*problems[:MAX_PROBLEMS_PER_FILE], Problem(file, None, None, f"... {more} more problems")]


def _scan_files(paths: Sequence[str | os.PathLike[str]]) -> list[_Scan]:
    """Scan each file once; flag a file given twice and ids repeated across files (at the later location)."""
    scans: list[_Scan] = []
    seen_files: dict[str, str] = {}
    first_at: dict[str, tuple[str, int]] = {}
    for path in paths:
        name = os.fspath(path)
        key = os.path.realpath(name)
        if key in seen_files:
            scan = _Scan(name)
            scan.problems.append(Problem(name, None, None, f"the same file is given twice (also as {seen_files[key]})"))
            scans.append(scan)
            continue
        seen_files[key] = name
        scan = _scan_file(path)
        for case_id, line in scan.ids:
            if case_id in first_at:
                other_file, other_line = first_at[case_id]
                if other_file != scan.file:
                    scan.problems.append(
                        Problem(scan.file, line, "id", f"duplicate id {case_id!r} (first at {other_file}:{other_line})")
                    )
            else:
                first_at[case_id] = (scan.file, line)
        scans.append(scan)
    return scans


def _scan_file(path: str | os.PathLike[str]) -> _Scan:
    """Read one file line by line, validating each; never raises for bad content."""
    name = os.fspath(path)
    scan = _Scan(name)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        scan.problems.append(Problem(name, None, None, "file not found"))
        return scan
    except IsADirectoryError:
        scan.problems.append(Problem(name, None, None, "is a directory, not a case file"))
        return scan
    except OSError as err:
        scan.problems.append(Problem(name, None, None, f"cannot read: {err.strerror or err}"))
        return scan

    offset = 0
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
        offset = len(_BOM)
    first_line: dict[str, int] = {}
    nonblank = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        line_offset = offset
        offset += len(raw) + 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            nonblank += 1
            scan.problems.append(
                Problem(
                    name,
                    lineno,
                    None,
                    f"not valid UTF-8 at byte offset {err.start} of the line (file offset {line_offset + err.start})",
                )
            )
            continue
        if not text.strip():
            continue
        nonblank += 1
        parsed, obj, problems = _parse_json(text, name, lineno)
        scan.problems.extend(problems)
        if not parsed:
            continue
        case_id = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(case_id, str) and case_id.strip():
            if case_id in first_line:
                scan.problems.append(
                    Problem(name, lineno, "id", f"duplicate id {case_id!r} (first at line {first_line[case_id]})")
                )
            else:
                first_line[case_id] = lineno
                scan.ids.append((case_id, lineno))
        try:
            case, problems = case_from_dict(obj, name, lineno)
        except RecursionError:
            case, problems = None, [Problem(name, lineno, None, "JSON nested too deeply")]
        scan.problems.extend(problems)
        if case is not None:
            scan.cases.append((lineno, case))
    if nonblank == 0:
        scan.problems.append(Problem(name, None, None, "no cases (the file is empty or holds only blank lines)"))
    return scan


def _parse_json(text: str, file: str, line: int) -> tuple[bool, Any, list[Problem]]:
    """(parsed, value, problems): strict JSON (no NaN / Infinity); repeated keys in an object are a problem."""
    duplicates: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        obj = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=no_constant)
    except json.JSONDecodeError as err:
        return False, None, [Problem(file, line, None, f"invalid JSON: {err.msg} at column {err.colno}")]
    except RecursionError:
        return False, None, [Problem(file, line, None, "invalid JSON: nested too deeply")]
    except ValueError as err:  # NaN / Infinity, integers too long to convert
        return False, None, [Problem(file, line, None, f"invalid JSON: {err}")]
    problems = [
        Problem(file, line, None, f"duplicate JSON key {key!r} in one object") for key in dict.fromkeys(duplicates)
    ]
    return True, obj, problems


__all__ = [
    "MAX_PROBLEMS_PER_FILE",
    "case_to_json",
    "read_case_files",
    "read_cases",
    "read_splits",
    "write_cases",
]
