"""The configuration of a whole study (`toolprior study CONFIG`), filled from YAML by toolprior.config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataSettings:
    """The benchmark the study generates (see training.benchmark.BenchmarkConfig)."""

    seed: int = 7
    train_size: int = 2000
    val_size: int = 200
    mine_size: int = 400
    eval_per_category: int = 30
    eval_novel_per_category: int = 10
    train_mix: str | None = None

    def benchmark_config(self) -> Any:
        """These settings as the generator's `training.benchmark.BenchmarkConfig` (the seed is passed apart)."""
        from training.benchmark import BenchmarkConfig, parse_mix

        bench = BenchmarkConfig().replace(
            train_size=self.train_size,
            val_size=self.val_size,
            mine_size=self.mine_size,
            eval_per_category=self.eval_per_category,
            eval_novel_per_category=self.eval_novel_per_category,
        )
        return bench.replace(train_mix=parse_mix(self.train_mix)) if self.train_mix else bench


@dataclass
class EvalSettings:
    """How every method is scored (single-turn decisions unless max_turns > 1)."""

    max_new_tokens: int = 128
    batch_size: int = 48
    max_turns: int = 1


@dataclass
class ProbeSettings:
    """Probe experiment on the train split (never eval): decision-position layer curve with controls."""

    enabled: bool = True
    position: str = "decision"
    max_cases: int = 600
    patching_pairs: int = 24


@dataclass
class SteeringSettings:
    """Vector computed on `source_split`, layer x alpha chosen on `mine` (never eval), then scored once on eval."""

    method: str = "mean_diff"
    source: str = "classes"
    position: str = "decision"
    source_split: str = "train"
    layers: list[int] | None = None
    # sweep only the probe's best layer and this many layers on each side (None: `layers`, else every layer)
    layers_around_probe: int | None = None
    # compute the vector from a seeded sample of this many source cases (None: all of them)
    source_cases: int | None = None
    # in units of the vector: alpha 1 moves an activation by one clarify-minus-call_tool mean difference, which is
    # already the size of the whole class gap (the organism's vectors are 27-43 long at blocks 1-5); larger alphas
    # only break the output
    alphas: list[float] = field(default_factory=lambda: [-1.0, 0.5, 1.0, 2.0, 3.0])
    apply_positions: str = "from_decision"
    min_call_tool: float | None = None
    mine_cases: int | None = None
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    conditional_target: str = "balanced"


@dataclass
class StudyConfig:
    """One study: data -> SFT -> eval -> probe -> steering (chosen on mine) -> pairs -> SimPO -> every method on
    the same eval and eval_novel ids -> report."""

    name: str = "demo"
    out_dir: str = "runs"
    base: str = "organism"
    sft_config: str = "experiments/configs/sft_organism.yaml"
    sft_set: list[str] = field(default_factory=list)
    simpo_config: str = "experiments/configs/simpo_organism.yaml"
    simpo_set: list[str] = field(default_factory=list)
    # baselines on the same pairs (issue 7): does the preference loss matter?
    dpo_config: str = "experiments/configs/dpo_organism.yaml"
    dpo_set: list[str] = field(default_factory=list)
    adv_sft_config: str = "experiments/configs/adv_sft_organism.yaml"
    adv_sft_set: list[str] = field(default_factory=list)
    quantize: str = "nf4"
    data: DataSettings = field(default_factory=DataSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    steering: SteeringSettings = field(default_factory=SteeringSettings)
    methods: list[str] = field(
        default_factory=lambda: [
            "sft",
            "guardrail",
            "steering",
            "conditional_steering",
            "steering_random",
            "simpo",
            "simpo_steering",
            "dpo",
            "adv_sft",
        ]
    )
