"""JSON-lines reading shared by every reader of the project's record files (verdicts, pairs, imported records):
line numbers, blank lines skipped, and one Problem per line that is not JSON, never a partial result."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toolprior.errors import InputError, Problem


def read_text(path: str | os.PathLike[str]) -> str:
    """A file's UTF-8 text (a byte-order mark is dropped); InputError naming the file when it cannot be read."""
    file = os.fspath(path)
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(Problem(file, None, None, "no such file")) from None
    except UnicodeDecodeError as err:
        raise InputError(Problem(file, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})")) from None
    except OSError as err:
        raise InputError(Problem(file, None, None, f"cannot read: {err.strerror or err}")) from None


def parse_jsonl(file: str, text: str) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(1-based line number, parsed value) of every non-blank line, and a Problem for each line that is not JSON."""
    rows: list[tuple[int, Any]] = []
    problems: list[Problem] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((line_no, json.loads(raw)))
        except json.JSONDecodeError as err:
            problems.append(Problem(file, line_no, None, f"broken JSON: {err.msg} (column {err.colno})"))
    return rows, problems


def read_jsonl(path: str | os.PathLike[str]) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """`parse_jsonl` of a file's text."""
    return parse_jsonl(os.fspath(path), read_text(path))
