"""`toolprior probe CONFIG`: the probe experiment's config, and the agent it runs on.

    config = load_config(ProbeExperimentConfig, "experiments/configs/probe_organism.yaml")
    summary = run_probe_experiment(config, "runs/probe_organism")      # probes.experiment_run

What the experiment does, in order, on the agent (`model.path` + optional `model.adapter`):

1. reads the cases (`data.cases`), keeping only `data.splits` (default: train). Held-out splits (eval,
   eval_novel) are refused: probes are never fitted on the cases every method is scored on;
2. captures every block's activations (`capture.hooks` kinds) at each of `capture.positions`
   (`probes.capture.capture_cases`; optionally streamed to `activations/<position>/`);
3. fits the layer curve of each task x method (`probes.layer_curve.fit_layer_curve`, CV grouped by surface
   template, with the control task and the permutation baseline) and saves its probes (`probes/<name>/`,
   safetensors);
4. the base-model baseline (`probes.baseline`): the same curves on the model before the agent's fine-tuning: the
   adapter switched off (`auto` with an adapter), `model.base` (a separate folder), or a random initialisation of
   the same architecture (`auto` without either; `random`);
5. the logit lens at the decision point (`probes.logit_lens`);
6. activation patching on the twin pairs among the cases (`probes.patching`, `probes.attribution`): exact
   layer x position and layer x head maps in both directions, attribution patching, and their comparison;
7. writes `probe_block.json` (the `probe` block of report.json), `summary.json`, the curves, and the plots.

This module holds only the config (and `load_agent`), so loading a config never imports torch; the sets of known
values its checks use are read from the modules that define them (`toolprior.config.known`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolprior.actions import HELD_OUT_SPLITS, SPLITS
from toolprior.config import INPUT_PATH, MODEL_PATH, CheckContext, about, check, check_instance, known
from toolprior.config.model_settings import MODEL_SETTINGS
from toolprior.modeling import load_agent as load

BASELINES: tuple[str, ...] = ("auto", "base", "random", "none")

POSITIONS = known("toolprior.probes.positions", "POSITION_RULES")


def _c_rule(value: Any) -> str | None:
    """probes.C: a positive number, or 'cv' (chosen by cross-validation)."""
    if isinstance(value, str):
        return None if value == "cv" else f"expected a positive number or 'cv', got {value!r}"
    return None if value > 0 else f"must be > 0, got {value}"


@dataclass
class ModelSection:
    """The agent the probes read: `path` (the base, as training's `model.base`) with `adapter` on top."""

    path: str = field(default="organism", metadata=MODEL_SETTINGS["base"])
    adapter: str | None = field(default=None, metadata=about("the adapter folder on top of `path`", path=INPUT_PATH))
    base: str | None = field(
        default=None,
        metadata=about(
            "a separate base-model folder for the baseline (else: adapter off, or random init)", path=MODEL_PATH
        ),
    )
    quantize: str = field(default="none", metadata=MODEL_SETTINGS["quantize"])
    dtype: str = field(default="float32", metadata=MODEL_SETTINGS["dtype"])
    device: str | None = field(default=None, metadata=MODEL_SETTINGS["device"])
    trust_remote_code: bool = field(default=False, metadata=MODEL_SETTINGS["trust_remote_code"])


@dataclass
class DataSection:
    cases: list[str] = field(
        default_factory=lambda: ["runs/data/train.jsonl"], metadata=check(path=INPUT_PATH, nonempty=True)
    )
    splits: list[str] = field(default_factory=lambda: ["train"], metadata=check(choices=SPLITS, nonempty=True))
    max_cases: int | None = field(default=None, metadata=check(ge=1))

    def check_config(self, ctx: CheckContext) -> None:
        for i, split in enumerate(self.splits):
            if split in HELD_OUT_SPLITS:
                ctx.problem(
                    f"splits[{i}]",
                    f"{split!r} is held out: probes are never fitted on eval cases (use train, val or mine)",
                )


@dataclass
class CaptureSection:
    positions: list[str] = field(default_factory=lambda: ["decision"], metadata=check(choices=POSITIONS, nonempty=True))
    hooks: list[str] = field(
        default_factory=lambda: ["resid_post"],
        metadata=check(choices=known("toolprior.probes.hook_points", "HOOK_KINDS"), nonempty=True),
    )
    backend: str = field(default="hooks", metadata=check(choices=known("toolprior.probes.capture", "BACKENDS")))
    batch_size: int = field(default=16, metadata=check(ge=1))
    save_activations: bool = False
    store_dtype: str = field(default="float16", metadata=check(choices=known("toolprior.probes.store", "STORE_DTYPES")))


@dataclass
class ProbeSection:
    tasks: list[str] = field(
        default_factory=lambda: ["clarify_vs_call_tool", "five_way"],
        metadata=check(choices=known("toolprior.probes.folds", "TASKS"), nonempty=True),
    )
    methods: list[str] = field(
        default_factory=lambda: ["logreg", "mass_mean"],
        metadata=check(choices=known("toolprior.probes.fit", "METHODS"), nonempty=True),
    )
    folds: int = field(default=5, metadata=check(ge=2))
    C: float | str = field(default=0.1, metadata=check(rule=_c_rule))
    permutations: int = field(default=1, metadata=check(ge=0))
    seed: int = 0
    baseline: str = field(default="auto", metadata=check(choices=BASELINES))


@dataclass
class LensSection:
    enabled: bool = True
    position: str = field(default="decision", metadata=check(choices=POSITIONS))


@dataclass
class PatchingSection:
    enabled: bool = True
    position: str = field(
        default="prompt_end", metadata=check(choices=known("toolprior.probes.twins", "PATCH_POSITIONS"))
    )
    think: str = ""
    k: int = field(default=12, metadata=check(ge=1))
    max_pairs: int = field(default=32, metadata=check(ge=1))
    heads: bool = True
    attribution: bool = True
    batch_size: int = field(default=8, metadata=check(ge=1))


@dataclass
class ReportSection:
    position: str = "decision"
    task: str = "clarify_vs_call_tool"
    method: str = "logreg"


@dataclass
class ProbeExperimentConfig:
    """Everything `toolprior probe` runs (see the module docstring); YAML sections fill the nested sections."""

    output_dir: str = "runs/probe"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    capture: CaptureSection = field(default_factory=CaptureSection)
    probes: ProbeSection = field(default_factory=ProbeSection)
    lens: LensSection = field(default_factory=LensSection)
    patching: PatchingSection = field(default_factory=PatchingSection)
    report: ReportSection = field(default_factory=ReportSection)

    def check_config(self, ctx: CheckContext) -> None:
        """The reported probe must be one the experiment fits."""
        for name, value, among, where in (
            ("report.position", self.report.position, self.capture.positions, "capture.positions"),
            ("report.task", self.report.task, self.probes.tasks, "probes.tasks"),
            ("report.method", self.report.method, self.probes.methods, "probes.methods"),
        ):
            if value not in among:
                ctx.problem(name, f"{value!r} is not among {where}")


def validate_config(config: ProbeExperimentConfig, file: str = "<config>") -> None:
    """InputError naming each bad setting of a config built in code (a loaded one was checked by load_config)."""
    check_instance(config, file)


def load_agent(section: ModelSection) -> tuple[Any, Any]:
    """(model, tokenizer) of the agent `section` names (toolprior.modeling.load_agent)."""

    return load(
        section.path,
        section.adapter,
        quantize=section.quantize,
        dtype=section.dtype,
        device=section.device,
        trust_remote_code=section.trust_remote_code,
    )
