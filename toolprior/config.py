"""YAML configs that fill dataclasses, with `--set section.field=value` overrides from the command line.

Unknown keys and values of the wrong type are reported as `file:line: field: message` (exit 2 from the CLI),
so a typo in a config never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from toolprior.errors import InputError, Problem

T = TypeVar("T")


def _line_index(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map dotted keys to 1-based line numbers from a composed YAML node."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_line_index(value_node, key + "."))
    return lines


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a YAML mapping; returns (data, dotted-key -> line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(Problem(str(path), None, None, "file not found")) from None
    except (UnicodeDecodeError, IsADirectoryError) as err:
        raise InputError(Problem(str(path), None, None, f"cannot read: {err}")) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(Problem(str(path), line, None, f"invalid YAML: {getattr(err, 'problem', err)}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), 1, None, "expected a mapping of settings"))
    return data, (_line_index(node) if node is not None else {})


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`["training.learning_rate=1e-4", "lora.r=8"]` -> nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(Problem("--set", None, item, "expected KEY=VALUE"))
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        cursor = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def build_dataclass(
    cls: type[T], data: dict[str, Any], *, file: str = "<config>", lines: dict[str, int] | None = None, prefix: str = ""
) -> T:
    """Fill dataclass `cls` (nested dataclasses allowed) from `data`, reporting every unknown key and bad type."""
    lines = lines or {}
    problems: list[Problem] = []
    result = _build(cls, data, file, lines, prefix, problems)
    if problems:
        raise InputError(problems)
    return result


def _build(cls: Any, data: Any, file: str, lines: dict[str, int], prefix: str, problems: list[Problem]) -> Any:
    where = prefix.rstrip(".") or "<root>"
    if not isinstance(data, dict):
        problems.append(Problem(file, lines.get(where), where, f"expected a mapping, got {type(data).__name__}"))
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(Problem(file, lines.get(dotted), dotted, f"unknown setting (known: {known})"))
            continue
        hint = hints[key]
        value = _coerce_float(value, hint)
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, file, lines, dotted + ".", problems)
        elif not _type_ok(value, hint):
            problems.append(Problem(file, lines.get(dotted), dotted, f"expected {_hint_name(hint)}, got {value!r}"))
        else:
            kwargs[key] = float(value) if hint is float and isinstance(value, int) else value
    if problems:
        return None
    return cls(**kwargs)


def _coerce_float(value: Any, hint: Any) -> Any:
    """YAML 1.1 reads `1e-2` (no dot) as a string; accept it where the field wants a float."""
    wants_float = hint is float or (
        typing.get_origin(hint) in (typing.Union, types.UnionType) and float in typing.get_args(hint)
    )
    if wants_float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_config(
    cls: type[T],
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
) -> T:
    """Defaults, then the YAML file, then `--set` overrides, into one dataclass."""
    data: dict[str, Any] = dict(defaults or {})
    lines: dict[str, int] = {}
    file = "<defaults>"
    if path is not None:
        file_data, lines = read_yaml(path)
        data = deep_merge(data, file_data)
        file = str(path)
    if overrides:
        data = deep_merge(data, parse_overrides(overrides))
    return build_dataclass(cls, data, file=file, lines=lines)


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists, ready for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_plain(obj), sort_keys=False, allow_unicode=True)
