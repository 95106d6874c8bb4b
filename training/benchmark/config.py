"""BenchmarkConfig: split sizes, the train action mix, twins and generation noise; parse_mix for `--mix`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from toolprior.actions import ACTION_NAMES, SPLITS
from toolprior.errors import InputError, Problem

# The case study's train mix (call_tool 40 / answer_directly 23 / escalate 15 / clarify 13 / refuse 10).
DEFAULT_MIX: dict[str, float] = {
    "call_tool": 0.40,
    "answer_directly": 0.23,
    "escalate": 0.15,
    "clarify": 0.13,
    "refuse": 0.10,
}

# Minimal pairs per split (ambiguous clarify + resolved call_tool, same user text). In train/val/mine the resolved
# partner takes one of the split's call_tool places; in eval/eval_novel it is added to the category's cases.
DEFAULT_TWIN_PAIRS: dict[str, int] = {"train": 40, "val": 8, "mine": 16, "eval": 24, "eval_novel": 12}


def parse_mix(text: str) -> dict[str, float]:
    """`"call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10"` -> shares that sum to 1.

    Every action must appear once with a non-negative number, and the total must be positive. Raises InputError with
    a one-line message otherwise."""

    def bad(message: str) -> InputError:
        return InputError(Problem("--mix", None, None, message))

    if not isinstance(text, str) or not text.strip():
        raise bad("empty mix; expected e.g. call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10")
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise bad(f"{part.strip()!r} is not action=weight")
        if name not in ACTION_NAMES:
            raise bad(f"unknown action {name!r}; expected {', '.join(ACTION_NAMES)}")
        if name in weights:
            raise bad(f"{name} given twice")
        try:
            weight = float(value)
        except ValueError:
            raise bad(f"{name}={value.strip()!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise bad(f"{name}={value.strip()} must be a finite number >= 0")
        weights[name] = weight
    missing = [a for a in ACTION_NAMES if a not in weights]
    if missing:
        raise bad(f"missing {', '.join(missing)} (give all five actions)")
    total = sum(weights.values())
    if total <= 0:
        raise bad("weights sum to 0")
    return {a: weights[a] / total for a in ACTION_NAMES}


@dataclass(frozen=True)
class BenchmarkConfig:
    """What `write_benchmark` generates. Sizes are case counts; eval sizes are per category."""

    train_size: int = 2000
    val_size: int = 200
    mine_size: int = 400
    eval_per_category: int = 30
    eval_novel_per_category: int = 10
    train_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    twin_pairs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TWIN_PAIRS))
    noise_rate: float = 0.05  # share of raw samples corrupted the way LLM generators fail; QA must reject them

    def __post_init__(self) -> None:
        problems = []
        for name in ("train_size", "val_size", "mine_size", "eval_per_category", "eval_novel_per_category"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer >= 1 (got {value!r})")
        if not isinstance(self.noise_rate, (int, float)) or not 0 <= self.noise_rate < 0.5:
            problems.append(f"noise_rate must be in [0, 0.5) (got {self.noise_rate!r})")
        mix = self.train_mix
        if not isinstance(mix, dict) or sorted(mix) != sorted(ACTION_NAMES):
            problems.append(f"train_mix must give a share for each of {', '.join(ACTION_NAMES)}")
        elif any(not isinstance(v, (int, float)) or v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
            problems.append("train_mix shares must be numbers >= 0 with a positive sum")
        else:
            total = float(sum(mix.values()))
            scale = 1.0 if abs(total - 1.0) < 1e-9 else total  # already shares: keep them exactly (round trips)
            object.__setattr__(self, "train_mix", {a: float(mix[a]) / scale for a in ACTION_NAMES})
        pairs = self.twin_pairs
        if not isinstance(pairs, dict) or any(k not in SPLITS for k in pairs):
            problems.append(f"twin_pairs keys must be splits ({', '.join(SPLITS)})")
        elif any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in pairs.values()):
            problems.append("twin_pairs values must be integers >= 0")
        else:
            merged = {**DEFAULT_TWIN_PAIRS, **pairs}  # a partial mapping changes only the splits it names
            object.__setattr__(self, "twin_pairs", {s: int(merged[s]) for s in SPLITS})
        if problems:
            raise InputError([Problem("<benchmark config>", None, None, p) for p in problems])

    def size(self, split: str) -> int:
        """Cases planned for a mix-driven split (train/val/mine)."""
        return {"train": self.train_size, "val": self.val_size, "mine": self.mine_size}[split]

    def replace(self, **changes: Any) -> BenchmarkConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InputError(f"unknown benchmark config field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_size": self.train_size,
            "val_size": self.val_size,
            "mine_size": self.mine_size,
            "eval_per_category": self.eval_per_category,
            "eval_novel_per_category": self.eval_novel_per_category,
            "train_mix": dict(self.train_mix),
            "twin_pairs": dict(self.twin_pairs),
            "noise_rate": self.noise_rate,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<benchmark config>") -> BenchmarkConfig:
        if not isinstance(data, dict):
            raise InputError(Problem(source, None, None, "expected a mapping of BenchmarkConfig fields"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise InputError(
                Problem(source, None, unknown[0], f"unknown field; known fields: {', '.join(sorted(known))}")
            )
        values = dict(data)
        if isinstance(values.get("train_mix"), str):
            values["train_mix"] = parse_mix(values["train_mix"])
        try:
            return cls(**values)
        except InputError as err:
            raise InputError([Problem(source, None, None, p.message) for p in err.problems]) from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> BenchmarkConfig:
        """Read fields from a YAML mapping (a `benchmark:` key holding them is accepted too)."""

        name = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except FileNotFoundError:
            raise InputError(Problem(name, None, None, "file not found")) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise InputError(Problem(name, line, None, f"invalid YAML: {getattr(err, 'problem', err)}")) from None
        if data is None:
            data = {}
        if isinstance(data, dict) and isinstance(data.get("benchmark"), dict) and len(data) == 1:
            data = data["benchmark"]
        return cls.from_dict(data, source=name)
