"""BFCL record ids and message checks shared by the single-turn and multi-turn importers."""

from __future__ import annotations

import re
from typing import Any

from toolprior.cases import Message
from toolprior.importers.common import RecordError, require, text

# `<category>_<n>` with BFCL's live ids `<category>_<n>-<m>-<k>`; the category is everything before the number.
ID_PATTERN = re.compile(r"(?P<category>[a-z][a-z_]*?)_(?P<number>\d+)(?:-\d+)*")


def record_id(data: dict[str, Any], category: str) -> tuple[str, re.Match[str]]:
    """(the record's id, its match of `ID_PATTERN`), or RecordError when it is no id of `category`."""
    rid = text(require(data, "id"), "id", nonempty=True)
    match = ID_PATTERN.fullmatch(rid)
    if match is None or match.group("category") != category:
        raise RecordError("id", f"{rid!r} is not a {category} id; one BFCL file holds one category")
    return rid, match


def check_ends_with_user(messages: tuple[Message, ...], field: str) -> None:
    """RecordError unless `messages` is non-empty and ends with a user message (the decision point)."""
    if not messages:
        raise RecordError(field, "holds no messages")
    if messages[-1].role != "user":
        raise RecordError(field, f"must end with a user message (the decision point), ends with {messages[-1].role!r}")
