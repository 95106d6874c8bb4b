"""Type checking of config values against the dataclass annotations: unions, lists, dicts, literals, and YAML's
string spellings of floats; every mismatch named by its dotted field."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is not None or isinstance(hint, types.UnionType):
        return str(hint).replace("typing.", "").replace("NoneType", "None")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_list(hint: Any) -> bool:
    return typing.get_origin(hint) in (list, tuple, Sequence) or hint in (list, tuple)


def _is_dict(hint: Any) -> bool:
    return typing.get_origin(hint) is dict or hint is dict


def _shape_fits(value: Any, hint: Any) -> bool:
    """Whether `value` is the kind of thing `hint` describes (before looking inside it), to pick a union's arm."""
    if hint is Any or hint is object or typing.get_origin(hint) is typing.Literal:
        return True
    if hint is type(None):
        return value is None
    if _is_list(hint):
        return isinstance(value, (list, tuple))
    if _is_dict(hint) or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _as_float(value: Any) -> Any:
    """YAML 1.1 reads `1e-2` (no dot) as a string; accept it where the field wants a float."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def convert_value(value: Any, hint: Any, where: str, out: list[tuple[str, str]]) -> Any:
    """`value` checked against `hint` (elements of lists and values of dicts too); appends (field, message) for each
    mismatch and returns the value with YAML's string spellings of floats read as floats."""
    if hint is Any or hint is object:
        return value
    if _is_union(hint):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None) and _shape_fits(value, a)]
        for arm in candidates:
            trial: list[tuple[str, str]] = []
            fitted = convert_value(value, arm, where, trial)
            if not trial:
                return fitted
        if len(candidates) == 1:  # one arm has the value's shape: its precise message (e.g. which element)
            return convert_value(value, candidates[0], where, out)
        out.append((where, f"expected {_hint_name(hint)}, got {show_value(value)}"))
        return value
    if hint is type(None):
        if value is not None:
            out.append((where, f"expected null, got {show_value(value)}"))
        return value
    if typing.get_origin(hint) is typing.Literal:
        if value not in typing.get_args(hint):
            out.append(
                (where, f"expected one of {', '.join(map(str, typing.get_args(hint)))}, got {show_value(value)}")
            )
        return value
    if _is_list(hint):
        if not isinstance(value, (list, tuple)):
            out.append((where, f"expected a list ({_hint_name(hint)}), got {show_value(value)}"))
            return value
        elements = [a for a in typing.get_args(hint) if a is not Ellipsis]
        element = elements[0] if len(elements) == 1 else Any
        return [convert_value(v, element, f"{where}[{i}]", out) for i, v in enumerate(value)]
    if _is_dict(hint):
        if not isinstance(value, dict):
            out.append((where, f"expected a mapping ({_hint_name(hint)}), got {show_value(value)}"))
            return value
        key_hint, value_hint = typing.get_args(hint) or (Any, Any)
        converted: dict[Any, Any] = {}
        for k, v in value.items():
            if key_hint is str and not isinstance(k, str):
                out.append((f"{where}.{k}", f"expected a text key, got {show_value(k)}"))
            converted[k] = convert_value(v, value_hint, f"{where}.{k}", out)
        return converted
    if hint is float:
        value = _as_float(value)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out.append((where, f"expected float, got {show_value(value)}"))
        elif not math.isfinite(value):  # nan and inf are never a meaningful setting; they only poison a run
            out.append((where, f"expected a finite number, got {value}"))
        return value
    if hint is int:
        if not (isinstance(value, int) and not isinstance(value, bool)):
            out.append((where, f"expected int, got {show_value(value)}"))
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        out.append((where, f"expected {_hint_name(hint)}, got {show_value(value)}"))
    return value


def show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
