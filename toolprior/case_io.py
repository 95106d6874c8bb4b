"""Reading and writing case JSONL files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from toolprior.atomic import atomic_open
from toolprior.cases import Case


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
