"""The configuration of an ablation (`toolprior ablate CONFIG`), filled from YAML by toolprior.config.

An ablation trains the same recipe with one thing changed per arm, over several seeds, and scores every run on
the very same cases. An arm is a list of overrides: `KEY=VALUE` of the SFT config (training.neftune_noise_alpha,
training.assistant_only_loss, lora.r, lora.target_modules, data.clarify_arc, ...), or `bench.KEY=VALUE` of the
benchmark the arm trains on (bench.train_mix). `grid` adds one arm per combination of its values.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.config import CONFIG_PATH, MODEL_PATH, CheckContext, Origin, check, load_config, to_plain
from toolprior.config.model_settings import MODEL_SETTINGS
from toolprior.errors import InputError, Problem
from toolprior.experiments.study_config import (
    SPLITS,
    STEERING_POSITIONS,
    DataSettings,
    EvalSettings,
    check_layers,
    override_origins,
    refuse_held_out,
)


@dataclass
class SteeringGrid:
    """Optional steering axis: per run, a mean-difference vector from the train split at the decision point,
    scored at each layer x alpha on `split` (mine by default: a grid of settings is a choice, never made on eval)."""

    layers: list[int] = field(default_factory=list, metadata=check(ge=0))
    alphas: list[float] = field(default_factory=list)
    split: str = field(default="mine", metadata=check(choices=SPLITS))
    max_cases: int | None = field(default=200, metadata=check(ge=1))
    apply_positions: str = field(default="from_decision", metadata=check(choices=STEERING_POSITIONS))

    def check_config(self, ctx: CheckContext) -> None:
        refuse_held_out(ctx, "split", self.split, "a layer x alpha grid is a choice, never made on scored cases")


@dataclass
class AblationConfig:
    """Arms x seeds of base + QLoRA SFT, each scored on `split` of one shared benchmark."""

    name: str = field(default="ablation", metadata=check(nonempty=True))
    out_dir: str = field(default="runs/ablate", metadata=check(nonempty=True))
    base: str = field(default="organism", metadata=check(path=MODEL_PATH))
    quantize: str = field(default="nf4", metadata=MODEL_SETTINGS["quantize"])
    dtype: str = field(default="float32", metadata=MODEL_SETTINGS["dtype"])  # how eval and the steering grid load
    # fold the adapter into the base weights for eval (unmerged LoRA layers double a CPU decode step of a small model)
    merge_adapters: bool = False
    sft_config: str = field(default="experiments/configs/sft_organism.yaml", metadata=check(path=CONFIG_PATH))
    question: str = ""
    # overrides every arm shares, applied before the arm's own (e.g. a shorter run for a quick look)
    sft_set: list[str] = field(default_factory=list)
    # the first arm is the reference every other arm is compared with
    arms: dict[str, list[str]] = field(default_factory=lambda: {"recipe": []})
    # finished SFT runs (folders with config.yaml, train_summary.json, adapter/) a unit adopts instead of training
    # when one is that unit's very run: same resolved config but for where it writes, same data bytes
    # (experiments.sft_reuse); a folder that is missing or differs is passed over
    reuse_sft: list[str] = field(default_factory=list)
    # a folder kept in git for each finished unit's record (summaries and verdicts, no adapter): a unit recorded
    # there is restored instead of run, so a long ablation survives a fresh checkout (experiments.ablate)
    record_dir: str | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=check(nonempty=True))
    split: str = field(default="eval", metadata=check(choices=SPLITS))
    max_cases: int | None = field(default=None, metadata=check(ge=1))
    data: DataSettings = field(default_factory=DataSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    steering: SteeringGrid = field(default_factory=SteeringGrid)

    def sft_overrides(self, folder: Path, data: Path, seed: int) -> list[str]:
        """What the ablation sets in the SFT config of one unit (before `sft_set` and the arm's overrides)."""
        return [
            f"output_dir={folder / 'sft'}",
            f"model.base={self.base}",
            f"model.quantize={self.quantize}",
            f"data.dir={data}",
            f"training.seed={seed}",
        ]

    def check_config(self, ctx: CheckContext) -> None:
        """Every arm (the listed ones and the grid's) as the units will use it: its `bench.KEY=VALUE` settings on
        the benchmark, and the SFT config with `sft_set` and the arm's other overrides, loaded now."""
        # lazy: training.sft loads torch and TRL; a bad config is refused before that
        from toolprior.training.run_configs import SFTRunConfig

        check_layers(ctx, "steering.layers", self.steering.layers, self.base)
        for key, values in self.grid.items():
            if not values:
                ctx.problem(f"grid.{key}", "must list at least one value")
        if not self.arms and not any(self.grid.values()):
            ctx.problem("arms", "no arms: give `arms` or `grid`")
            return
        if not (ctx.accepted("sft_config") and ctx.accepted("sft_set") and ctx.accepted("data")):
            return
        shared = override_origins(ctx, "sft_set", len(self.sft_set), 0)
        known_bench = {f.name for f in dataclasses.fields(DataSettings)}
        for overrides, origins in self._arms_with_origins(ctx):
            sft: list[str] = []
            sft_origins: list[Origin] = []
            bench: list[str] = []
            bench_origins: list[Origin] = []
            for item, origin in zip(overrides, origins, strict=True):
                if isinstance(item, str) and item.startswith("bench."):
                    key = item.removeprefix("bench.").partition("=")[0].strip().split(".")[0]
                    if key not in known_bench:
                        known_names = ", ".join(sorted(known_bench))
                        ctx.extend(
                            [origin.problem("bench", f"unknown benchmark setting {key!r} (known: {known_names})")]
                        )
                        continue
                    bench.append(item.removeprefix("bench."))
                    bench_origins.append(origin)
                else:
                    sft.append(item)
                    sft_origins.append(origin)
            loads = (
                (DataSettings, None, bench, bench_origins, to_plain(self.data)),
                (SFTRunConfig, self.sft_config, [*self.sft_set, *sft], [*shared, *sft_origins], None),
            )
            for cls, path, items, where, defaults in loads:
                try:
                    load_config(cls, path, items, defaults, origins=where)
                except InputError as err:
                    ctx.extend(err.problems)

    def _arms_with_origins(self, ctx: CheckContext) -> list[tuple[list[Any], list[Origin]]]:
        """Each arm's overrides (experiments.ablate.arms: the listed arms, then the grid's) with where each one was
        written: `arms.<name>[i]`, or `grid.<key>` for an override the grid made."""

        out = []
        for name, items in arms(self).items():
            if name in self.arms:
                out.append((items, override_origins(ctx, f"arms.{name}", len(items), 0)))
                continue
            origins = []
            for item in items:
                key = f"grid.{item.partition('=')[0]}"
                o = ctx.origin(key)
                origins.append(Origin(o.file, o.line, ctx.dotted(key)))
            out.append((items, origins))
        return out


def arms(config: AblationConfig) -> dict[str, list[str]]:
    """The config's arms, then one arm per combination of the grid's values (named by its overrides)."""
    out = {name: list(overrides) for name, overrides in config.arms.items()}
    keys = list(config.grid)
    combinations = itertools.product(*(config.grid[k] for k in keys)) if keys else []
    for values in combinations:
        overrides = [f"{k}={_yaml_value(v)}" for k, v in zip(keys, values, strict=True)]
        out.setdefault(", ".join(overrides), overrides)
    if not out:
        raise InputError([Problem("<config>", None, "arms", "no arms: give `arms` or `grid`")])
    return out


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return str(value)
