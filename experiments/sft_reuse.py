"""Adopting an earlier SFT run in place of training one: `toolprior ablate`'s `reuse_sft`.

An SFT run on 2 CPU cores is half an hour, and an ablation's reference arm is often a run someone has made already
(`experiments/organism_seeds.py` trains the organism's recipe at seeds 0-2). A run is adopted only when it is the
same run: its resolved `config.yaml` equals the one the unit would train with in every field but `output_dir` and
`data.dir`, and the train and validation files it read hold the same bytes (sha256). Anything less (a field added
since, another seed, a data file gone) trains afresh.

A candidate is either an SFT run's folder (config.yaml, train_summary.json, adapter/) or a shipped adapter with its
sidecar (`experiments/organism/smollm2`: organism.json, adapter/), whose sidecar records the same three facts.
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
from toolprior.experiments.organism_adapter import SIDECAR, without_run_paths


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


def _earlier_run(candidate: Path) -> tuple[dict[str, Any], dict[str, str | None]] | None:
    """(resolved config, train/val sha256) of a finished run at `candidate`: an SFT run's folder or a shipped
    adapter's sidecar; None when it is neither."""
    if not (candidate / "adapter").is_dir():
        return None
    if (candidate / SIDECAR).is_file():
        try:
            sidecar = json.loads((candidate / SIDECAR).read_text(encoding="utf-8"))
        except ValueError:
            return None  # an unreadable sidecar is passed over, like any candidate that is not the run
        data = sidecar.get("data") or {}
        return sidecar.get("config") or {}, {"train": data.get("train_sha256"), "val": data.get("val_sha256")}
    if not all((candidate / name).is_file() for name in ("config.yaml", "train_summary.json")):
        return None
    earlier = yaml.safe_load((candidate / "config.yaml").read_text(encoding="utf-8"))
    return (earlier, data_hashes(earlier)) if isinstance(earlier, dict) else None


def find_reusable(config: Any, candidates: Sequence[str | Path]) -> Path | None:
    """The first finished SFT run among `candidates` (SFT run folders or shipped adapters with their sidecar) that
    is `config` (an SFTRunConfig) run elsewhere; None when none is."""
    wanted = to_plain(config)
    wanted_core = without_run_paths(wanted)
    wanted_data = data_hashes(wanted)
    if None in wanted_data.values():
        return None
    for candidate in map(Path, candidates):
        earlier = _earlier_run(candidate)
        if earlier is not None and without_run_paths(earlier[0]) == wanted_core and earlier[1] == wanted_data:
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
    if (source / SIDECAR).is_file():
        # a shipped adapter: its run's config and training summary are in the sidecar
        sidecar = json.loads((source / SIDECAR).read_text(encoding="utf-8"))
        atomic_write_text(out / "config.yaml", yaml.safe_dump(sidecar["config"], sort_keys=False))
        atomic_write_text(out / "train_summary.json", json.dumps(sidecar["train"], indent=2) + "\n")
    else:
        for name in ("config.yaml", "train_summary.json"):
            shutil.copy2(source / name, out / name)
    shutil.rmtree(out / "adapter", ignore_errors=True)
    partial.rename(out / "adapter")
    atomic_write_text(out / "reused_from.json", json.dumps({"source": source.as_posix()}) + "\n")
