"""Adopting an earlier SFT run in place of training one: `toolprior ablate`'s `reuse_sft`.

An SFT run on 2 CPU cores is half an hour, and an ablation's reference arm is often a run someone has made already
(`experiments/organism_seeds.py` trains the organism's recipe at seeds 0-2). A run is adopted only when it is the
same run: its resolved `config.yaml` equals the one the unit would train with in every field but `output_dir` and
`data.dir`, and the train and validation files it read hold the same bytes (sha256). Anything less (a field added
since, another seed, a data file gone) trains afresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from toolprior.atomic import atomic_write_text
from toolprior.config import to_plain

# where a run writes to, not what it trains: the only fields two identical runs may differ in
PLACE_FIELDS = (("output_dir",), ("data", "dir"))


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def data_hashes(config: dict[str, Any]) -> dict[str, str | None]:
    """sha256 of the train and val files an SFT config (plain dict) reads: data.train_file / data.val_file, else
    train.jsonl / val.jsonl in data.dir (None for a file that is not there)."""
    data = config.get("data") or {}
    folder = Path(str(data.get("dir") or ""))
    return {
        "train": _file_hash(Path(data["train_file"]) if data.get("train_file") else folder / "train.jsonl"),
        "val": _file_hash(Path(data["val_file"]) if data.get("val_file") else folder / "val.jsonl"),
    }


def _without_place(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for path in PLACE_FIELDS:
        target = out
        for key in path[:-1]:
            target = target.get(key) or {}
        target.pop(path[-1], None)
    return out


def find_reusable(config: Any, candidates: Sequence[str | Path]) -> Path | None:
    """The first finished SFT run among `candidates` (folders holding config.yaml, train_summary.json and adapter/)
    that is `config` (an SFTRunConfig) run elsewhere; None when none is."""
    wanted = to_plain(config)
    wanted_core = _without_place(wanted)
    wanted_data = data_hashes(wanted)
    if None in wanted_data.values():
        return None
    for candidate in map(Path, candidates):
        if not all((candidate / name).exists() for name in ("config.yaml", "train_summary.json", "adapter")):
            continue
        earlier = yaml.safe_load((candidate / "config.yaml").read_text(encoding="utf-8"))
        if not isinstance(earlier, dict) or _without_place(earlier) != wanted_core:
            continue
        if data_hashes(earlier) == wanted_data:
            return candidate
    return None


def adopt(source: Path, out: Path) -> None:
    """Copy the finished run at `source` into `out` (its adapter, config.yaml and train_summary.json) and record
    where it came from in `out/reused_from.json`; the adapter is copied to a side folder and moved into place last,
    so a copy cut short is not taken for a finished run."""
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "adapter.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source / "adapter", partial)
    for name in ("config.yaml", "train_summary.json"):
        shutil.copy2(source / name, out / name)
    shutil.rmtree(out / "adapter", ignore_errors=True)
    partial.rename(out / "adapter")
    atomic_write_text(out / "reused_from.json", json.dumps({"source": source.as_posix()}) + "\n")
