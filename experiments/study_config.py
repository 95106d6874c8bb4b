"""The configuration of a whole study (`toolprior study CONFIG`), filled from YAML by toolprior.config.

Everything a study will need is checked when the config is loaded (toolprior.config), before the first stage
writes anything: each field's type and declared constraints, and `StudyConfig.check_config`, which also loads the
SFT / SimPO / DPO / adversarial-SFT configs the study will train with, with the study's own overrides on top.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.actions import HELD_OUT_SPLITS
from toolprior.config import CONFIG_PATH, INPUT_PATH, MODEL_PATH, CheckContext, Origin, check, known, load_config
from toolprior.config.model_settings import MODEL_SETTINGS
from toolprior.errors import InputError, Problem
from toolprior.experiments.steering_variants import variant_rule
from toolprior.model_source import prepared_folder
from toolprior.organism import organism_base_path

SPLITS = known("toolprior.actions", "SPLITS")
POSITION_RULES = known("toolprior.probes.positions", "POSITION_RULES")
STEERING_METHODS = known("toolprior.steering_names", "METHODS")
STEERING_SOURCES = known("toolprior.steering_names", "SOURCES")
STEERING_POSITIONS = known("toolprior.steering_names", "POSITIONS")

# The methods a study can score besides the SFT agent itself (see experiments.study.run_study).
STUDY_METHODS: tuple[str, ...] = (
    "sft",
    "guardrail",
    "steering",
    "conditional_steering",
    "steering_random",
    "simpo",
    "simpo_steering",
    "dpo",
    "adv_sft",
)


def calibration_target_rule(value: Any) -> str | None:
    """A conditional-steering threshold target probes.fit.calibrate_threshold accepts."""
    # lazy: probes.fit loads torch and scikit-learn; a bad config is refused before that
    from toolprior.probes.fit import parse_calibration_target

    try:
        parse_calibration_target(value)
    except ValueError as err:
        return str(err)
    return None


def decoder_layer_count(base: str) -> int | None:
    """How many decoder layers the model `base` has, read from its config.json (no weights); None when that
    cannot be known before the model is prepared (smollm2 not yet converted, a folder without a config)."""
    try:
        if base == "organism":
            folder = organism_base_path()
        elif base == "smollm2":
            folder = prepared_folder()
        else:
            folder = Path(base)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except Exception:  # a missing or unreadable config is the model loader's to report, when it loads the model
        return None
    for section in (config, config.get("text_config") or {}):
        count = section.get("num_hidden_layers") if isinstance(section, dict) else None
        if isinstance(count, int) and not isinstance(count, bool):
            return count
    return None


def check_layers(ctx: CheckContext, field_name: str, layers: list[int] | None, base: str) -> None:
    """Each of `layers` must be a decoder layer of `base`, when its layer count can be read."""
    count = decoder_layer_count(base) if layers else None
    if count is None:
        return
    for i, layer in enumerate(layers or []):
        if layer >= count:
            ctx.problem(f"{field_name}[{i}]", f"layer {layer} is outside the model ({base} has layers 0-{count - 1})")


def refuse_held_out(ctx: CheckContext, field_name: str, split: str, why: str) -> None:

    if split in HELD_OUT_SPLITS:
        ctx.problem(field_name, f"{split!r} is held out: {why}")


def override_origins(ctx: CheckContext, field_name: str, count: int, internal: int) -> list[Origin]:
    """Where each override of a sub-config was written: `internal` set by the study itself, then the config's own
    list `field_name` (each entry named `field_name[i]`, at its line). Paths in them stay relative to the current
    directory, as when the stage applies them."""
    here = ctx.origin(field_name)
    mine = Origin(here.file, here.line, f"{ctx.dotted(field_name)} (set by the study)")
    out = [mine] * internal
    for i in range(count):
        o = ctx.origin(f"{field_name}[{i}]")
        out.append(Origin(o.file, o.line, ctx.dotted(f"{field_name}[{i}]")))
    return out


def check_sub_config(
    ctx: CheckContext, cls: Any, path: str, internal: list[str], field_name: str, extra: list[str]
) -> None:
    """Load the config `path` of class `cls` with `internal` then `extra` overrides, as the stage will, and keep
    its problems (files the study writes itself are not required yet)."""

    try:
        load_config(
            cls, path, [*internal, *extra], origins=override_origins(ctx, field_name, len(extra), len(internal))
        )
    except InputError as err:
        ctx.extend(err.problems)


def check_shipped_adapter(ctx: CheckContext, config: StudyConfig) -> None:
    """The shipped adapter's sidecar against the SFT config the study would train with (its data files are
    checked when the data stage has written them)."""
    # lazy: it loads torch; a bad config is refused before that
    from toolprior.experiments.organism_adapter import config_hash, config_identity, load_sft_config, read_sidecar

    try:
        sidecar = read_sidecar(Path(config.sft_adapter or ""))
        sft = load_sft_config(config.sft_config, [*config.sft_overrides(), *config.sft_set])
    except InputError as err:
        ctx.extend(err.problems)
        return
    if config_hash(config_identity(sft)) != sidecar["config_hash"]:
        ctx.problem("sft_adapter", f"was trained with another SFT config than {config.sft_config} with this study's "
                    "overrides; retrain it with `make organism` or drop sft_adapter")  # fmt: skip


@dataclass
class DataSettings:
    """The benchmark the study generates (see training.benchmark.BenchmarkConfig)."""

    seed: int = 7
    train_size: int = field(default=2000, metadata=check(ge=1))
    val_size: int = field(default=200, metadata=check(ge=1))
    mine_size: int = field(default=400, metadata=check(ge=1))
    eval_per_category: int = field(default=30, metadata=check(ge=1))
    eval_novel_per_category: int = field(default=10, metadata=check(ge=1))
    train_mix: str | None = None

    def benchmark_config(self) -> Any:
        """These settings as the generator's `training.benchmark.BenchmarkConfig` (the seed is passed apart)."""
        # lazy: it loads torch; a bad config is refused before that
        from toolprior.training.benchmark import BenchmarkConfig, parse_mix

        bench = BenchmarkConfig().replace(
            train_size=self.train_size,
            val_size=self.val_size,
            mine_size=self.mine_size,
            eval_per_category=self.eval_per_category,
            eval_novel_per_category=self.eval_novel_per_category,
        )
        return bench.replace(train_mix=parse_mix(self.train_mix)) if self.train_mix else bench

    def check_config(self, ctx: CheckContext) -> None:
        """The generator's own rules (the action mix's syntax and shares), named at `train_mix`."""

        try:
            self.benchmark_config()
        except InputError as err:
            for p in err.problems:
                ctx.problem("train_mix" if self.train_mix else "", p.message)


@dataclass
class EvalSettings:
    """How every method is scored (single-turn decisions unless max_turns > 1)."""

    max_new_tokens: int = field(default=128, metadata=check(ge=1))
    batch_size: int = field(default=48, metadata=check(ge=1))
    max_turns: int = field(default=1, metadata=check(ge=1))


@dataclass
class ProbeSettings:
    """Probe experiment on the train split (never eval): decision-position layer curve with controls."""

    enabled: bool = True
    position: str = field(default="decision", metadata=check(choices=POSITION_RULES))
    max_cases: int = field(default=600, metadata=check(ge=1))
    patching_pairs: int = field(default=24, metadata=check(ge=1))
    patching_positions: int = field(default=12, metadata=check(ge=1))  # the last k positions of each twin prompt
    patching_heads: bool = True  # per-head patching as well as per layer (a pass per head and position)


VARIANT_SCALES: tuple[str, ...] = ("own", "decision_mean_diff")


@dataclass
class SteeringSettings:
    """Vector computed on `source_split`, layer x alpha chosen on `mine` (never eval), then scored once on eval."""

    method: str = field(default="mean_diff", metadata=check(choices=STEERING_METHODS))
    source: str = field(default="classes", metadata=check(choices=STEERING_SOURCES))
    position: str = field(default="decision", metadata=check(choices=POSITION_RULES))
    source_split: str = field(default="train", metadata=check(choices=SPLITS))
    layers: list[int] | None = field(default=None, metadata=check(ge=0, nonempty=True))
    # sweep only the probe's best layer and this many layers on each side (None: `layers`, else every layer)
    layers_around_probe: int | None = field(default=None, metadata=check(ge=0))
    # compute the vector from a seeded sample of this many source cases (None: all of them)
    source_cases: int | None = field(default=None, metadata=check(ge=1))
    # in units of the vector: alpha 1 moves an activation by one clarify-minus-call_tool mean difference, which is
    # already the size of the whole class gap (the organism's vectors are 27-43 long at blocks 1-5); larger alphas
    # only break the output
    alphas: list[float] = field(default_factory=lambda: [-1.0, 0.5, 1.0, 2.0, 3.0], metadata=check(nonempty=True))
    apply_positions: str = field(default="from_decision", metadata=check(choices=STEERING_POSITIONS))
    min_call_tool: float | None = field(default=None, metadata=check(ge=0, le=1))
    mine_cases: int | None = field(default=None, metadata=check(ge=1))
    # the first seed draws the random-direction control every method is compared with
    random_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata=check(nonempty=True))
    conditional_target: str = field(default="balanced", metadata=check(rule=calibration_target_rule))
    # more than one way to make and apply the vector, searched together on mine (experiments.steering_variants):
    # "method/source/position/apply" each; empty: the one variant method/source/position/apply_positions above
    variants: list[str] = field(default_factory=list, metadata=check(rule=variant_rule))
    # the variants' scale, so one alpha grid pushes each as hard: "own" keeps each vector as its method makes it
    # (the PCA of twin differences comes out 25-30x shorter than a class-mean difference); "decision_mean_diff"
    # rescales every variant, layer by layer, to the norm of the class-mean difference at the decision point
    variant_scale: str = field(default="own", metadata=check(choices=VARIANT_SCALES))

    def check_config(self, ctx: CheckContext) -> None:
        refuse_held_out(ctx, "source_split", self.source_split, "the vector is never computed on scored cases")


# The methods the external stage can score (each needs what the study made for it: the chosen steering, SimPO).
EXTERNAL_METHODS: tuple[str, ...] = ("sft", "steering", "simpo", "simpo_steering")


@dataclass
class ExternalSettings:
    """Held-out sets from outside the benchmark (experiments.study_external): the When2Call file and BFCL files,
    scored for each of `methods` by their own metrics, and When2Call's log-probability protocol for the base model
    (adapter off) and the SFT agent. Nothing is chosen on them. Off unless a file is named."""

    when2call: str | None = field(default=None, metadata=check(path=INPUT_PATH))
    bfcl: list[str] = field(default_factory=list, metadata=check(path=INPUT_PATH))
    methods: list[str] = field(
        default_factory=lambda: ["sft", "steering", "simpo"], metadata=check(choices=EXTERNAL_METHODS)
    )
    logprob: bool = True  # When2Call's own multiple-choice scoring, for the base and the SFT agent
    limit: int | None = field(default=None, metadata=check(ge=1))  # the first N cases of each file (a cut)

    @property
    def enabled(self) -> bool:
        return bool(self.when2call or self.bfcl)


@dataclass
class StudyConfig:
    """One study: data -> SFT -> eval -> probe -> steering (chosen on mine) -> pairs -> SimPO -> every method on
    the same eval and eval_novel ids -> report."""

    name: str = field(default="demo", metadata=check(nonempty=True))
    # what this study leaves out against the full one, said on the report's first page
    scope: str = ""
    out_dir: str = field(default="runs", metadata=check(nonempty=True))
    base: str = field(default="organism", metadata=check(path=MODEL_PATH))
    sft_config: str = field(default="experiments/configs/sft_organism.yaml", metadata=check(path=CONFIG_PATH))
    sft_set: list[str] = field(default_factory=list)
    # a shipped SFT adapter (experiments/organism/smollm2, from `make organism`) used instead of training one, after
    # its sidecar is checked against sft_config and the generated train / val files
    sft_adapter: str | None = field(default=None, metadata=check(path=INPUT_PATH))
    simpo_config: str = field(default="experiments/configs/simpo_organism.yaml", metadata=check(path=CONFIG_PATH))
    simpo_set: list[str] = field(default_factory=list)
    # SimPO settings searched on mine (experiments.study_simpo_search): name -> overrides on top of simpo_config and
    # simpo_set; empty: no search, the config as written
    simpo_search: dict[str, list[str]] = field(default_factory=dict)
    # baselines on the same pairs (issue 7): does the preference loss matter?
    dpo_config: str = field(default="experiments/configs/dpo_organism.yaml", metadata=check(path=CONFIG_PATH))
    dpo_set: list[str] = field(default_factory=list)
    adv_sft_config: str = field(default="experiments/configs/adv_sft_organism.yaml", metadata=check(path=CONFIG_PATH))
    adv_sft_set: list[str] = field(default_factory=list)
    quantize: str = field(default="nf4", metadata=MODEL_SETTINGS["quantize"])
    dtype: str = field(default="float32", metadata=MODEL_SETTINGS["dtype"])  # how eval, probes and steering load
    # fold each adapter into the base weights for generation, vectors and KL (unmerged LoRA layers double a CPU
    # decode step of a small model); the probe stage keeps the adapter apart to read the adapter-off baseline
    merge_adapters: bool = False
    data: DataSettings = field(default_factory=DataSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    steering: SteeringSettings = field(default_factory=SteeringSettings)
    external: ExternalSettings = field(default_factory=ExternalSettings)
    methods: list[str] = field(default_factory=lambda: list(STUDY_METHODS), metadata=check(choices=STUDY_METHODS))

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def check_reportable(self) -> None:
        """Refuse an interim report (`--report-only`) of a run whose first evaluation has not finished: there is
        nothing to report, and no folder is made for it."""
        if not (self.run_dir / "stages" / "eval_sft.json").is_file():
            problem = Problem(str(self.run_dir), None, None, "nothing to report yet: eval_sft has not finished")
            raise InputError(problem)

    def sft_overrides(self) -> list[str]:
        """What the study sets in the SFT config (before `sft_set`): its run folder, base, quantisation and data."""
        run = self.run_dir
        return [
            f"output_dir={run / 'sft'}",
            f"model.base={self.base}",
            f"model.quantize={self.quantize}",
            f"data.dir={run / 'data'}",
        ]

    def pair_overrides(self, method: str) -> list[str]:
        """What the study sets in a pair-training config (before its `*_set`): run folder, base, the SFT adapter,
        the mined pairs and the held-out files the leak check reads."""
        run = self.run_dir
        return [
            f"output_dir={run / method}",
            f"model.base={self.base}",
            f"model.adapter={run / 'sft' / 'adapter'}",
            f"data.pairs_file={run / 'pairs.jsonl'}",
            f"data.eval_files=[{run / 'data' / 'eval.jsonl'}, {run / 'data' / 'eval_novel.jsonl'}]",
        ]

    def trained_configs(self) -> list[tuple[str, str, str, str]]:
        """(method, config field, overrides field, config class as module:Name) of every training the methods
        need, in the order the study runs them."""
        wanted = set(self.methods)
        out = [("sft", "sft_config", "sft_set", "toolprior.training.run_configs:SFTRunConfig")]
        if wanted & {"simpo", "simpo_steering"}:
            out.append(("simpo", "simpo_config", "simpo_set", "toolprior.training.run_configs:SimPORunConfig"))
        if "dpo" in wanted:
            out.append(("dpo", "dpo_config", "dpo_set", "toolprior.training.run_configs:DPORunConfig"))
        if "adv_sft" in wanted:
            out.append(("adv_sft", "adv_sft_config", "adv_sft_set", "toolprior.training.run_configs:AdvSFTRunConfig"))
        return out

    def check_config(self, ctx: CheckContext) -> None:
        """Rules across sections: the steering layers inside the model, and every training config the study will
        load, loaded now with the study's overrides."""

        if "/" in self.name or self.name in (".", ".."):
            ctx.problem("name", f"must be a plain folder name, got {self.name!r}")
        check_layers(ctx, "steering.layers", self.steering.layers, self.base)
        if self.simpo_search and ctx.accepted("simpo_config") and ctx.accepted("simpo_set"):
            internal = [*self.pair_overrides("simpo"), *self.simpo_set]
            cls = importlib.import_module("toolprior.training.run_configs").SimPORunConfig
            for name, extra in self.simpo_search.items():
                if not name or "/" in name or name in (".", ".."):
                    ctx.problem(f"simpo_search.{name}", "a setting's name must be a plain folder name")
                    continue
                check_sub_config(ctx, cls, self.simpo_config, internal, f"simpo_search.{name}", list(extra))
        for method in self.external.methods:
            if self.external.enabled and method not in self.methods:
                ctx.problem(
                    "external.methods", f"{method!r} is not among the study's methods ({', '.join(self.methods)})"
                )
        if self.sft_adapter and ctx.accepted("sft_adapter") and ctx.accepted("sft_config"):
            check_shipped_adapter(ctx, self)
        for method, path_field, set_field, where in self.trained_configs():
            if not (ctx.accepted(path_field) and ctx.accepted(set_field)):
                continue
            module, _, name = where.partition(":")
            cls = getattr(importlib.import_module(module), name)
            internal = self.sft_overrides() if method == "sft" else self.pair_overrides(method)
            check_sub_config(ctx, cls, getattr(self, path_field), internal, set_field, getattr(self, set_field))
