"""The state every study stage reads (`StudyRun`): the config, the run folder and its data and SFT folders, the
cases of each split and the verdicts each evaluation saved. `experiments.study.Study` adds the stages;
`experiments.study_probe` and `experiments.study_report` take a `StudyRun`, so they need not import the study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    def save_verdicts(self, name: str, verdicts: list[Any]) -> None:
        write_verdicts(self.verdicts_path(name), verdicts)

    def load_verdicts(self, name: str) -> list[Any]:
        return read_verdicts(self.verdicts_path(name))
