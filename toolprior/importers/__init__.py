"""Importers: external benchmarks' files -> the project's cases.

>>> cases = import_file("when2call", Path("when2call_test_llm_judge.jsonl"))
>>> cases = import_file("bfcl", Path("BFCL_v4_irrelevance.json"), split="eval")

Every importer reads the whole file and returns every case, each already checked against the case schema, or
raises InputError with one Problem (file, line, field, message) per bad record: never a partial result.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from toolprior.cases import Case
from toolprior.errors import InputError, Problem
from toolprior.importers.bfcl import import_bfcl
from toolprior.importers.schema_convert import convert_parameters, convert_schema, tool_spec
from toolprior.importers.when2call import LABEL_ACTIONS, import_when2call

IMPORTERS: dict[str, Callable[..., list[Case]]] = {
    "when2call": import_when2call,
    "bfcl": import_bfcl,
}


def import_file(source: str, path: str | os.PathLike[str], split: str = "eval", **options: Any) -> list[Case]:
    """Import one benchmark file; `source` is one of IMPORTERS (`when2call`, `bfcl`). Options go to the
    source's importer (BFCL: `answers=`, `func_docs=`)."""
    importer = IMPORTERS.get(source)
    if importer is None:
        raise InputError(
            Problem(
                "<argument>", None, "source", f"unknown benchmark {source!r}; expected one of {', '.join(IMPORTERS)}"
            )
        )
    return importer(path, split, **options)


__all__ = [
    "IMPORTERS",
    "LABEL_ACTIONS",
    "convert_parameters",
    "convert_schema",
    "import_bfcl",
    "import_file",
    "import_when2call",
    "tool_spec",
]
