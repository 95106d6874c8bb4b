"""The configuration of an ablation (`toolprior ablate CONFIG`), filled from YAML by toolprior.config.

An ablation trains the same recipe with one thing changed per arm, over several seeds, and scores every run on
the very same cases. An arm is a list of overrides: `KEY=VALUE` of the SFT config (training.neftune_noise_alpha,
training.assistant_only_loss, lora.r, lora.target_modules, data.clarify_arc, ...), or `bench.KEY=VALUE` of the
benchmark the arm trains on (bench.train_mix). `grid` adds one arm per combination of its values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments.study_config import DataSettings, EvalSettings


@dataclass
class SteeringGrid:
    """Optional steering axis: per run, a mean-difference vector from the train split at the decision point,
    scored at each layer x alpha on `split` (mine by default: a grid of settings is a choice, never made on eval)."""

    layers: list[int] = field(default_factory=list)
    alphas: list[float] = field(default_factory=list)
    split: str = "mine"
    max_cases: int | None = 200
    apply_positions: str = "from_decision"


@dataclass
class AblationConfig:
    """Arms x seeds of base + QLoRA SFT, each scored on `split` of one shared benchmark."""

    name: str = "ablation"
    out_dir: str = "runs/ablate"
    base: str = "organism"
    quantize: str = "nf4"
    sft_config: str = "experiments/configs/sft_organism.yaml"
    question: str = ""
    # overrides every arm shares, applied before the arm's own (e.g. a shorter run for a quick look)
    sft_set: list[str] = field(default_factory=list)
    # the first arm is the reference every other arm is compared with
    arms: dict[str, list[str]] = field(default_factory=lambda: {"recipe": []})
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    split: str = "eval"
    max_cases: int | None = None
    data: DataSettings = field(default_factory=DataSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    steering: SteeringGrid = field(default_factory=SteeringGrid)
