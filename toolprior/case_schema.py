"""The shape of a case record in a case JSONL file: its field names, the keys of its parts, and the JSON-type
helpers that name a value's type in a problem message (`json_type_name`, `got_text`)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from toolprior.actions import CATEGORIES, EXTERNAL_CATEGORIES

REQUIRED_FIELDS: tuple[str, ...] = ("id", "category", "split", "expected_action", "messages", "tools")
OPTIONAL_FIELDS: tuple[str, ...] = ("gold", "followups", "acceptable", "twin", "tool_mode", "meta")
KNOWN_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + OPTIONAL_FIELDS

ALL_CATEGORIES: tuple[str, ...] = CATEGORIES + EXTERNAL_CATEGORIES
FOLLOWUP_ROLES: tuple[str, ...] = ("user", "tool")
MESSAGE_KEYS: tuple[str, ...] = ("role", "content", "name")
TOOL_KEYS: tuple[str, ...] = ("name", "description", "parameters")
GOLD_KEYS: tuple[str, ...] = ("think", "action", "content", "tool_calls")
TOOL_CALL_KEYS: tuple[str, ...] = ("name", "arguments")
JSON_TYPES: tuple[str, ...] = ("string", "number", "integer", "boolean", "array", "object", "null")


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type (bool is not an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def got_text(value: Any) -> str:
    kind = json_type_name(value)
    return "got null (omit an optional field instead)" if kind == "null" else f"got {kind}"


def choices_text(value: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"expected one of: {', '.join(valid)}{hint}"


def matches_type(value: Any, json_type: str) -> bool:
    """Does a parsed JSON value fit a JSON-schema type name? (3.0 is an integer; true is not a number.)"""
    kind = json_type_name(value)
    if json_type == "integer":
        return kind == "integer" or (kind == "number" and value.is_integer())
    if json_type == "number":
        return kind in ("integer", "number")
    return kind == json_type


# tool name -> (parameter schemas by name, required names); read leniently from the raw tools so that gold tool
# calls are checked even while a tool's schema has problems of its own.
Offered = dict[str, tuple[dict[str, dict[str, Any]], list[str]]]


def offered_tools(raw_tools: Any) -> Offered | None:
    """The tools a case offers, best effort; None when `tools` is not even a list (nothing sensible to check)."""
    if not isinstance(raw_tools, list):
        return None
    offered: Offered = {}
    for item in raw_tools:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in offered:
            continue
        params = item.get("parameters")
        props = params.get("properties", {}) if isinstance(params, dict) else {}
        props = {k: v if isinstance(v, dict) else {} for k, v in props.items()} if isinstance(props, dict) else {}
        required = params.get("required", []) if isinstance(params, dict) else []
        required = [r for r in required if isinstance(r, str) and r in props] if isinstance(required, list) else []
        offered[item["name"]] = (props, list(dict.fromkeys(required)))
    return offered
