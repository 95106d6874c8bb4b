"""Reading YAML settings files and `--set KEY=VALUE` overrides, merging them, and writing a config back as YAML."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from toolprior.config.sources import COMMAND_LINE, Origin, line_index
from toolprior.config.typecheck import show_value
from toolprior.errors import InputError, Problem


def _safe_load(text: str) -> Any:
    """yaml.safe_load, with the few non-YAMLError failures (an impossible date such as 2020-13-01, nesting too
    deep) turned into YAMLError so every caller reports one line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise yaml.YAMLError(f"{type(err).__name__}: {err}") from None


def _yaml_problem(err: BaseException) -> str:
    """The gist of a YAML error on one line (PyYAML's own text adds the position on further lines)."""
    text = str(getattr(err, "problem", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_yaml(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a YAML mapping; returns (data, dotted-key -> line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(Problem(str(path), None, None, "file not found")) from None
    except (UnicodeDecodeError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise InputError(Problem(str(path), None, None, f"cannot read: {err}")) from None
    try:
        node = yaml.compose(text)
        data = _safe_load(text)
    except (yaml.YAMLError, RecursionError) as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(Problem(str(path), line, None, f"invalid YAML: {_yaml_problem(err)}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), 1, None, "expected a mapping of settings"))
    try:
        lines = line_index(node)
    except RecursionError:
        lines = {}
    return data, lines


def parse_override(item: Any, origin: Origin) -> tuple[list[str], Any]:
    """`"a.b=1"` -> (["a", "b"], 1), the value read as YAML; InputError naming the override otherwise."""

    def bad(message: str) -> InputError:
        label = origin.label or show_value(item)
        return InputError(Problem(origin.file, origin.line, label, message))

    if not isinstance(item, str) or "=" not in item:
        raise bad("expected KEY=VALUE")
    key, raw = item.split("=", 1)
    parts = [p.strip() for p in key.split(".")]
    if not all(parts):
        raise bad("expected KEY=VALUE with a dotted KEY such as lora.r")
    try:
        value = _safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as err:
        raise bad(f"invalid YAML value: {_yaml_problem(err)}") from None
    return parts, value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`["training.learning_rate=1e-4", "lora.r=8"]` -> nested dict with YAML-typed values."""
    out: dict[str, Any] = {}
    for item in items:
        parts, value = parse_override(item, COMMAND_LINE)
        set_path(out, parts, value)
    return out


def set_path(out: dict[str, Any], parts: list[str], value: Any) -> None:
    cursor = out
    for part in parts[:-1]:
        nxt = cursor.get(part)
        if not isinstance(nxt, dict):  # a later `a.b=1` after `a=2`: the later override wins, as on a command line
            nxt = cursor[part] = {}
        cursor = nxt
    cursor[parts[-1]] = value


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`; nested mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def leaves(value: Any, prefix: str) -> list[str]:
    """Dotted paths of the leaves of an override's value (a mapping merges into the config key by key)."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in leaves(v, f"{prefix}.{k}")]
    return [prefix]


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
