"""`toolprior probe CONFIG`: one probe experiment from a YAML config, end to end.

    config = load_config(ProbeExperimentConfig, "experiments/configs/probe_organism.yaml")
    summary = run_probe_experiment(config, "runs/probe_organism")
    summary["probe"]        # the report contract's probe block

What it does, in order, on the agent (`model.path` + optional `model.adapter`):

1. reads the cases (`data.cases`), keeping only `data.splits` (default: train). Held-out splits (eval,
   eval_novel) are refused: probes are never fitted on the cases every method is scored on;
2. captures every block's activations (`capture.hooks` kinds) at each of `capture.positions`
   (`probes.capture.capture_cases`; optionally streamed to `activations/<position>/`);
3. fits the layer curve of each task x method (`probes.fit.fit_layer_curve`, CV grouped by surface template, with
   the control task and the permutation baseline) and saves its probes (`probes/<name>/`, safetensors);
4. the base-model baseline (`probes.baseline`): the same curves on the model before the agent's fine-tuning: the
   adapter switched off (`auto` with an adapter), `model.base` (a separate folder), or a random initialisation of
   the same architecture (`auto` without either; `random`);
5. the logit lens at the decision point (`probes.logit_lens`);
6. activation patching on the twin pairs among the cases (`probes.patching`): exact layer x position and
   layer x head maps in both directions, attribution patching, and their comparison;
7. writes `probe_block.json` (the `probe` block of report.json), `summary.json`, the curves, and the plots.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.actions import HELD_OUT_SPLITS, SPLITS
from toolprior.atomic import atomic_write_text
from toolprior.config import INPUT_PATH, MODEL_PATH, CheckContext, check, check_instance, known
from toolprior.errors import InputError, Problem

BASELINES: tuple[str, ...] = ("auto", "base", "random", "none")
RANDOM_BASELINE_SEED = 104_729

POSITIONS = known("probes.positions", "POSITION_RULES")


def _c_rule(value: Any) -> str | None:
    """probes.C: a positive number, or 'cv' (chosen by cross-validation)."""
    if isinstance(value, str):
        return None if value == "cv" else f"expected a positive number or 'cv', got {value!r}"
    return None if value > 0 else f"must be > 0, got {value}"


@dataclass
class ModelSection:
    path: str = field(default="organism", metadata=check(path=MODEL_PATH))
    adapter: str | None = field(default=None, metadata=check(path=INPUT_PATH))
    # a separate base-model folder for the baseline (else: adapter off, or random init)
    base: str | None = field(default=None, metadata=check(path=MODEL_PATH))
    quantize: str = field(default="none", metadata=check(choices=known("toolprior.modeling", "QUANTIZE")))
    dtype: str = field(default="float32", metadata=check(choices=known("toolprior.modeling", "DTYPES")))
    device: str | None = None
    trust_remote_code: bool = False


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
        metadata=check(choices=known("probes.hook_points", "HOOK_KINDS"), nonempty=True),
    )
    backend: str = field(default="hooks", metadata=check(choices=known("probes.capture", "BACKENDS")))
    batch_size: int = field(default=16, metadata=check(ge=1))
    save_activations: bool = False
    store_dtype: str = field(default="float16", metadata=check(choices=known("probes.store", "STORE_DTYPES")))


@dataclass
class ProbeSection:
    tasks: list[str] = field(
        default_factory=lambda: ["clarify_vs_call_tool", "five_way"],
        metadata=check(choices=known("probes.fit", "TASKS"), nonempty=True),
    )
    methods: list[str] = field(
        default_factory=lambda: ["logreg", "mass_mean"],
        metadata=check(choices=known("probes.fit", "METHODS"), nonempty=True),
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
    position: str = field(default="prompt_end", metadata=check(choices=known("probes.patching", "PATCH_POSITIONS")))
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


# ---------------------------------------------------------------------------------------------------- helpers


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def load_agent(section: ModelSection) -> tuple[Any, Any]:
    """(model, tokenizer) of the agent `section` names (toolprior.modeling.load_agent)."""
    from toolprior.modeling import load_agent as load

    return load(
        section.path,
        section.adapter,
        quantize=section.quantize,
        dtype=section.dtype,
        device=section.device,
        trust_remote_code=section.trust_remote_code,
    )


def random_twin(model: Any, seed: int = 0) -> Any:
    """A randomly initialised model of `model`'s architecture and size (same device and dtype; never quantised).

    Seeded from `seed` but never with the seed a tiny model is usually built with, and checked to differ from
    `model`: a "random" baseline that happens to equal the agent would report the agent's own curve."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolprior.modeling import model_fingerprint

    base = getattr(model, "get_base_model", lambda: model)()
    config = copy.deepcopy(base.config)
    if getattr(config, "quantization_config", None) is not None:
        delattr(config, "quantization_config")
    param = next(base.parameters())
    dtype = param.dtype if param.dtype.is_floating_point else torch.float32
    reference = model_fingerprint(base).id
    for attempt in range(3):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BASELINE_SEED + 7919 * seed + attempt)
            fresh = AutoModelForCausalLM.from_config(config, dtype=dtype).to(param.device).eval()
        if model_fingerprint(fresh).id != reference:
            return fresh
    raise RuntimeError("could not draw a random initialisation that differs from the agent")


@contextlib.contextmanager
def baseline_model(config: ProbeExperimentConfig, model: Any) -> Iterator[tuple[str, Any] | None]:
    """The model the baseline curves are computed on, for the block: (what it is, the model), or None."""
    from toolprior.modeling import load_model

    choice = config.probes.baseline
    has_adapter = config.model.adapter is not None and hasattr(model, "disable_adapter")
    if choice == "none":
        yield None
        return
    if choice == "base" or (choice == "auto" and (has_adapter or config.model.base)):
        if config.model.base:
            other = load_model(
                config.model.base,
                quantize=config.model.quantize,
                dtype=config.model.dtype,
                device=config.model.device,
                trust_remote_code=config.model.trust_remote_code,
            )
            try:
                yield f"base model {config.model.base}", other
            finally:
                del other
            return
        if not has_adapter:
            raise InputError(
                Problem(
                    "<config>", None, "probes.baseline", "'base' needs model.adapter or model.base to know the base"
                )
            )
        with model.disable_adapter():
            yield "base model (adapter disabled)", model
        return
    fresh = random_twin(model, seed=config.probes.seed)
    try:
        yield "random initialisation", fresh
    finally:
        del fresh


def select_cases(config: ProbeExperimentConfig, *, limit: bool = True) -> list[Any]:
    """The cases of `config.data` in its splits, the first `data.max_cases` of them when `limit`."""
    from toolprior.case_io import read_case_files

    cases = [c for c in read_case_files(config.data.cases) if c.split in config.data.splits]
    if limit and config.data.max_cases is not None:
        cases = cases[: config.data.max_cases]
    if not cases:
        raise InputError(
            Problem(",".join(config.data.cases), None, "data.splits", f"no cases in splits {config.data.splits}")
        )
    return cases


def _usable(cases: list[Any], position: str) -> list[Any]:
    from probes.positions import THINK_RULES

    return [c for c in cases if position not in THINK_RULES or c.gold is not None]


def _name(*parts: str) -> str:
    return "__".join(parts)


def _fit_curves(
    config: ProbeExperimentConfig, acts: Any, cases: list[Any], kind: str, progress: bool
) -> dict[tuple[str, str], Any]:
    from probes.fit import fit_layer_curve, task_rows

    hooks = [h for h in acts.hook_names if h.endswith(_SUFFIX[kind])]
    groups = [c.template for c in cases]
    curves = {}
    for task in config.probes.tasks:
        rows, _ = task_rows(acts.labels, task)
        if len({acts.labels[i] for i in rows}) < 2:
            _log(progress, f"  skip {task}: fewer than two of its classes among the cases")
            continue
        for method in config.probes.methods:
            curves[(task, method)] = fit_layer_curve(
                acts,
                None,
                groups,
                task=task,
                method=method,
                folds=config.probes.folds,
                seed=config.probes.seed,
                C=config.probes.C,
                hooks=hooks,
                permutations=config.probes.permutations,
            )
    return curves


_SUFFIX = {"resid_post": "hook_resid_post", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "z": "attn.hook_z"}


# ------------------------------------------------------------------------------------------------------ the runner


def run_probe_experiment(
    config: ProbeExperimentConfig, out_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Run the experiment `config` describes into `out_dir` (default `config.output_dir`); returns the summary
    (also written to summary.json) whose "probe" key is the report contract's block."""
    import torch

    from probes.capture import capture_cases
    from probes.hook_points import all_hook_names
    from probes.markdown import render_probe_markdown
    from probes.report import json_safe, plot_layer_curve, probe_block
    from probes.store import STORE_DTYPES, ActivationStore
    from toolprior.config import dump_yaml

    validate_config(config)
    out = Path(out_dir if out_dir is not None else config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.replace(config, output_dir=str(out))
    atomic_write_text(out / "config.yaml", dump_yaml(resolved))
    timings: dict[str, float] = {}
    started = time.perf_counter()

    cases = select_cases(config)
    _log(progress, f"probe: {len(cases)} cases from {', '.join(config.data.cases)} (splits {config.data.splits})")
    model, tokenizer = load_agent(config.model)
    timings["load"] = time.perf_counter() - started
    kinds = list(dict.fromkeys(config.capture.hooks))
    hook_names = all_hook_names(model, tuple(kinds))
    summary: dict[str, Any] = {
        "model": {"path": config.model.path, "adapter": config.model.adapter, "quantize": config.model.quantize},
        "cases": {"n": len(cases), "splits": config.data.splits, "files": config.data.cases},
        "curves": {},
        "files": [],
    }

    def capture(which: Any, position: str, store_name: str | None) -> tuple[Any, list[Any]]:
        usable = _usable(cases, position)
        store = None
        if store_name is not None and config.capture.save_activations:
            store = ActivationStore(
                out / "activations" / store_name, dtype=STORE_DTYPES[config.capture.store_dtype], overwrite=True
            )
        acts = capture_cases(
            which,
            tokenizer,
            usable,
            hook_names,
            position,
            batch_size=config.capture.batch_size,
            backend=config.capture.backend,
            store=store,
            progress=progress,
        )
        return acts, usable

    # -- the agent's curves
    curves: dict[tuple[str, str, str, str], Any] = {}
    t0 = time.perf_counter()
    for position in config.capture.positions:
        _log(progress, f"capture at {position}: {len(hook_names)} hook points")
        acts, usable = capture(model, position, position)
        for kind in kinds:
            for (task, method), curve in _fit_curves(config, acts, usable, kind, progress).items():
                curves[(position, kind, task, method)] = curve
                name = _name(position, kind, task, method)
                curve.save(out / "curves" / f"{name}.json")
                curve.probe_weights().save(out / "probes" / name)
                best = curve.best()
                _log(progress, f"  {name}: best {'-' if best is None else f'{best.hook} acc {best.acc:.3f}'}")
        del acts
    timings["probes"] = time.perf_counter() - t0

    # -- logit lens and patching on the agent
    if config.lens.enabled:
        t0 = time.perf_counter()
        summary["logit_lens"] = _run_lens(config, model, tokenizer, cases, out, progress)
        timings["logit_lens"] = time.perf_counter() - t0
    if config.patching.enabled:
        t0 = time.perf_counter()
        # twins are rare (a few per hundred cases): patching looks for them in every case of the splits, not only
        # the first data.max_cases the probes use
        every_case = select_cases(config, limit=False)
        summary["patching"] = _run_patching(config, model, tokenizer, every_case, out, progress)
        timings["patching"] = time.perf_counter() - t0

    # -- the base-model baseline
    base_curves: dict[tuple[str, str, str, str], Any] = {}
    t0 = time.perf_counter()
    with baseline_model(config, model) as baseline:
        if baseline is not None:
            label, other = baseline
            summary["baseline"] = label
            _log(progress, f"baseline: {label}")
            for position in config.capture.positions:
                acts, usable = capture(other, position, None)
                for kind in kinds:
                    for (task, method), curve in _fit_curves(config, acts, usable, kind, False).items():
                        base_curves[(position, kind, task, method)] = curve
                        curve.save(out / "curves" / f"{_name('base', position, kind, task, method)}.json")
                del acts
    timings["baseline"] = time.perf_counter() - t0

    # -- plots, the report block, the summary
    for key, curve in curves.items():
        name = _name(*key)
        base = base_curves.get(key)
        plot_layer_curve(curve, out / "plots" / f"layer_curve__{name}.png", base=base)
        summary["curves"][name] = probe_block(curve, base)
    report_key = (config.report.position, "resid_post", config.report.task, config.report.method)
    if report_key not in curves:
        report_key = next((k for k in curves if k[0] == config.report.position and k[2] == config.report.task), None)
    if report_key is not None:
        block = probe_block(curves[report_key], base_curves.get(report_key))
        summary["probe"] = block
        atomic_write_text(out / "probe_block.json", json.dumps(json_safe(block), indent=2) + "\n")
    timings["total"] = time.perf_counter() - started
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    summary = json_safe(summary)
    atomic_write_text(out / "report.md", render_probe_markdown(summary))
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    summary["files"] = sorted(written | {"summary.json"})
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    del model
    with contextlib.suppress(Exception):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return summary


def _run_lens(
    config: ProbeExperimentConfig, model: Any, tokenizer: Any, cases: list[Any], out: Path, progress: bool
) -> dict[str, Any]:
    from probes.logit_lens import logit_lens
    from probes.report import json_safe, plot_logit_lens

    usable = _usable(cases, config.lens.position)
    _log(progress, f"logit lens at {config.lens.position} on {len(usable)} cases")
    lens = logit_lens(model, tokenizer, usable, config.lens.position, batch_size=config.capture.batch_size)
    data = lens.to_dict()
    atomic_write_text(out / "logit_lens.json", json.dumps(json_safe(data), indent=2) + "\n")
    plot_logit_lens(lens, out / "plots" / "logit_lens.png")
    return data


def _run_patching(
    config: ProbeExperimentConfig, model: Any, tokenizer: Any, cases: list[Any], out: Path, progress: bool
) -> dict[str, Any]:
    from probes.patching import attribution_patching, compare_patching, patch_heads, patch_resid, twin_pairs
    from probes.report import json_safe, plot_head_map, plot_patching_comparison, plot_patching_map

    section = config.patching
    pairs = twin_pairs(cases, tokenizer, section.position, section.think, section.max_pairs)
    if not pairs:
        _log(progress, "patching: no twin pairs among the cases; skipped")
        return {"pairs": 0, "skipped": "no twin pairs among the cases"}
    _log(progress, f"patching: {len(pairs)} twin pairs at {section.position}, last {section.k} positions")
    kw: dict[str, Any] = {"batch_size": section.batch_size, "position": section.position}
    resid = patch_resid(model, tokenizer, pairs, section.k, progress=progress, **kw)
    data: dict[str, Any] = {"pairs": len(pairs), "resid_exact": resid.to_dict()}
    plots = out / "plots"
    plot_patching_map(resid, plots / "patching_resid_exact.png", title="activation patching, hook_resid_post")
    heads = None
    if section.heads:
        heads = patch_heads(model, tokenizer, pairs, progress=progress, **kw)
        data["heads_exact"] = heads.to_dict()
        plot_head_map(heads, plots / "patching_heads_exact.png")
    if section.attribution:
        approx, approx_heads = attribution_patching(model, tokenizer, pairs, section.k, heads=section.heads, **kw)
        data["resid_attribution"] = approx.to_dict()
        data["comparison_resid"] = compare_patching(resid, approx)
        plot_patching_map(
            approx, plots / "patching_resid_attribution.png", title="attribution patching, hook_resid_post"
        )
        plot_patching_comparison(resid, approx, plots / "patching_exact_vs_attribution.png")
        if heads is not None and approx_heads is not None:
            data["heads_attribution"] = approx_heads.to_dict()
            data["comparison_heads"] = compare_patching(heads, approx_heads)
            plot_head_map(approx_heads, plots / "patching_heads_attribution.png")
    atomic_write_text(out / "patching.json", json.dumps(json_safe(data), indent=2) + "\n")
    return {
        "pairs": len(pairs),
        "position": section.position,
        "k": section.k,
        "clean_mean": data["resid_exact"]["clean_mean"],
        "corrupted_mean": data["resid_exact"]["corrupted_mean"],
        "comparison_resid": data.get("comparison_resid"),
        "comparison_heads": data.get("comparison_heads"),
    }
