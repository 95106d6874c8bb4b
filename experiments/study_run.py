"""The state every study stage reads (`StudyRun`): the config, the run folder and its data and SFT folders, the
cases of each split and the verdicts each evaluation saved. `experiments.study.Study` adds the stages;
`experiments.study_probe` and `experiments.study_report` take a `StudyRun`, so they need not import the study."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.evals.harness import HarnessConfig
from toolprior.experiments.study_config import StudyConfig
from toolprior.model_source import file_sha256
from toolprior.verdict import read_verdicts, write_verdicts


class EvaluatingHost(Protocol):
    """What a stage kept outside the study (`study_external`, `study_simpo_search`) needs of the study that runs it
    (`experiments.study.Study`): its config and run folder, its keyed evaluation and the verdicts it saved."""

    config: Any
    run: Path

    def evaluate(
        self,
        name: str,
        cases: list[Any],
        steer: Any = None,
        adapter: Path | None = None,
        steering: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def load_verdicts(self, name: str) -> list[Any]: ...


class AgentHost(EvaluatingHost, Protocol):
    """An `EvaluatingHost` that also loads the agent and the steering chosen on mine (`study_external`,
    `study_kl`)."""

    def cases(self, split: str) -> list[Any]: ...

    def agent(self, adapter: Path | None = None) -> tuple[Any, Any]: ...

    def chosen(self) -> dict[str, Any] | None: ...

    def chosen_vectors(self, chosen: dict[str, Any]) -> tuple[int, float, Any, Any]: ...

    def apply_positions(self) -> str: ...


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

    def harness(self) -> HarnessConfig:
        """How every evaluation of the study runs its cases (`eval` in the config)."""
        e = self.config.eval
        return HarnessConfig(max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, max_turns=e.max_turns)

    def verdicts_key(self, cases: Sequence[Any], adapter: Path, steering: dict[str, Any] | None) -> dict[str, Any]:
        """What decides an evaluation's verdicts: the cases' full records, the harness, the model settings, every
        file of the adapter folder, and what steering applies (`steering_key`; None unsteered)."""
        return {
            "cases": cases_digest(cases),
            "harness": dataclasses.asdict(self.harness()),
            "model": {k: str(getattr(self.config, k)) for k in ("base", "quantize", "dtype", "merge_adapters")},
            "adapter": folder_digest(adapter),
            "steering": steering,
        }

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


def cases_digest(cases: Sequence[Any]) -> str:
    """sha256 over the cases' full records in order (ids are positional, `clarification_loop_0003`: a benchmark
    written again with other content keeps them)."""
    h = hashlib.sha256()
    for case in cases:
        h.update(json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def folder_digest(folder: Path) -> str | None:
    """sha256 over every file of an adapter folder (weights and adapter_config.json), by relative path; None when
    the folder holds no file."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.name == "adapter_config.json":
            h.update(_canonical_adapter_config(path))
        else:
            h.update(bytes.fromhex(file_sha256(path)))  # streamed: adapter weights can be large
    return h.hexdigest()


def _canonical_adapter_config(path: Path) -> bytes:
    """adapter_config.json as sorted JSON, its `target_modules` sorted: peft keeps them as a set and writes them in
    the process's hash order, so the same adapter saved by two processes differed there (and a study re-scored every
    finished SimPO setting after each restart)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    return json.dumps(config, sort_keys=True).encode()


def vector_digest(vector: Any) -> str:
    """sha256 over a steering vector's layers and their float32 values: what a steered evaluation applied."""
    h = hashlib.sha256()
    for layer in sorted(vector.layers):
        h.update(str(layer).encode())
        h.update(vector[layer].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def probe_digest(probe: Any) -> str | None:
    """sha256 over a linear probe's classes, coef, intercept and standardisation (`probes.linear_probe`); None for
    a probe without them, whose gate then keys nothing and is always run."""
    parts = [getattr(probe, name, None) for name in ("coef", "intercept", "mean", "scale")]
    if any(part is None for part in parts):
        return None
    h = hashlib.sha256(json.dumps(list(getattr(probe, "classes", ()))).encode())
    for part in parts:
        h.update(torch.as_tensor(part).detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def steering_key(vector: Any, alpha: float, positions: str, **more: Any) -> dict[str, Any]:
    """What a steered evaluation applies, for `Study.evaluate(steering=...)`: the vector's digest, alpha, the
    positions, and anything else that decides it (a gate)."""
    return {"vector": vector_digest(vector), "alpha": float(alpha), "positions": positions, **more}
