"""Where each setting of a config was written (file and line, or a `--set` override), for problem messages and
for resolving relative paths against the folder of the file that named them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from toolprior.errors import Problem


@dataclass(frozen=True)
class Origin:
    """Where a setting was written: a config file and line, or an override (`--set`, or one entry of a list of
    overrides inside another config, then `label` names that entry). `folder`: what relative paths in it resolve
    against (None: the current directory, as for a path typed on the command line)."""

    file: str
    line: int | None
    label: str | None = None
    folder: Path | None = None

    def problem(self, field: str, message: str) -> Problem:
        if self.label:
            return Problem(self.file, self.line, self.label, f"{field}: {message}")
        return Problem(self.file, self.line, field, message)


COMMAND_LINE = Origin("--set", None)


class Sources:
    """Dotted setting -> Origin. A setting with no entry of its own takes its parent's (a list element its list's,
    a field its section's), and the root's is the config file."""

    def __init__(self, root: Origin):
        self.root = root
        self.map: dict[str, Origin] = {}

    def of(self, dotted: str) -> Origin:
        key = dotted
        while key:
            if key in self.map:
                return self.map[key]
            key = _parent(key)
        return self.root

    def replace_under(self, dotted: str, origin: Origin) -> None:
        """`dotted` (and everything under it) now comes from `origin`."""
        for key in [k for k in self.map if k == dotted or k.startswith((dotted + ".", dotted + "["))]:
            del self.map[key]
        self.map[dotted] = origin


def _parent(dotted: str) -> str:
    if dotted.endswith("]") and "[" in dotted:
        return dotted[: dotted.rindex("[")]
    return dotted.rpartition(".")[0]


def line_index(node: yaml.Node | None, prefix: str = "", seen: set[int] | None = None) -> dict[str, int]:
    """Map dotted keys (and `key[i]` list elements) to 1-based line numbers from a composed YAML node."""
    lines: dict[str, int] = {}
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:  # an alias can make the node graph cyclic
        return lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}" if isinstance(key_node, yaml.ScalarNode) else f"{prefix}?"
            lines.setdefault(key, key_node.start_mark.line + 1)
            for k, v in line_index(value_node, key + ".", seen).items():
                lines.setdefault(k, v)
    elif isinstance(node, yaml.SequenceNode) and prefix:
        base = prefix[:-1]
        for i, item in enumerate(node.value):
            lines.setdefault(f"{base}[{i}]", item.start_mark.line + 1)
            inner = line_index(item, f"{base}[{i}].", seen)
            for k, v in inner.items():
                lines.setdefault(k, v)
    return lines
