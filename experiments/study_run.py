"""The state every study stage reads (`StudyRun`): the config, the run folder and its data and SFT folders, the
cases of each split and the verdicts each evaluation saved. `experiments.study.Study` adds the stages;
`experiments.study_probe` and `experiments.study_report` take a `StudyRun`, so they need not import the study."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.experiments.study_config import StudyConfig
from toolprior.verdict import read_verdicts, write_verdicts


class StudyRun:
    """One study run's config, folders, cases and saved verdicts: what every stage reads."""

    def __init__(self, config: StudyConfig, progress: bool = True):
        self.config = config
        self.run = config.run_dir
        self.run.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self._cases: dict[str, list[Any]] = {}

    @property
    def data_dir(self) -> Path:
        return self.run / "data"

    @property
    def sft_dir(self) -> Path:
        return self.run / "sft"

    def cases(self, split: str) -> list[Any]:
        if split not in self._cases:
            self._cases[split] = read_cases(self.data_dir / f"{split}.jsonl")
        return self._cases[split]

    @property
    def held_out(self) -> list[Any]:
        return self.cases("eval") + self.cases("eval_novel")

    def verdicts_path(self, name: str) -> Path:
        return self.run / "verdicts_cache" / f"{name}.jsonl"

    def key_path(self, name: str) -> Path:
        return self.run / "verdicts_cache" / f"{name}.key.json"

    def save_verdicts(self, name: str, verdicts: list[Any], key: dict[str, Any] | None = None, **record: Any) -> None:
        """Write `name`'s verdicts; with `key` (what decided them), also a record `{"key", **record}` that
        `kept_verdicts` matches later. The old record goes first and the new one is written last, so a kill in
        between leaves no record that names other verdicts."""
        self.key_path(name).unlink(missing_ok=True)
        write_verdicts(self.verdicts_path(name), verdicts)
        if key is not None:
            atomic_write_text(self.key_path(name), json.dumps({"key": key, **record}, indent=2) + "\n")

    def kept_verdicts(self, name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The record saved with `name`'s verdicts when its key is `key` (JSON-equal), else None: an evaluation a
        stage had finished before it was cut is not run again."""
        path = self.key_path(name)
        if not (path.is_file() and self.verdicts_path(name).is_file()):
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        return saved if saved.get("key") == json.loads(json.dumps(key)) else None

    def load_verdicts(self, name: str) -> list[Any]:
        return read_verdicts(self.verdicts_path(name))


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes (an adapter's weights), None when there is no such file."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def vector_digest(vector: Any) -> str:
    """sha256 over a steering vector's layers and their float32 values: what a steered evaluation applied."""
    h = hashlib.sha256()
    for layer in sorted(vector.layers):
        h.update(str(layer).encode())
        h.update(vector[layer].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
