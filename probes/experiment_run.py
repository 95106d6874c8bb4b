"""`toolprior probe CONFIG`: one probe experiment from a YAML config, end to end.

    config = load_config(ProbeExperimentConfig, "experiments/configs/probe_organism.yaml")
    summary = run_probe_experiment(config, "runs/probe_organism")
    summary["probe"]        # the report contract's probe block

The config and what each step does: `probes.experiment`. Outputs: `probe_block.json` (the `probe` block of
report.json), `summary.json`, `report.md`, `curves/`, `probes/`, `plots/`, and optionally `activations/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_case_files
from toolprior.config import dump_yaml
from toolprior.errors import InputError, Problem
from toolprior.probes.attribution import attribution_patching
from toolprior.probes.baseline import baseline_model
from toolprior.probes.capture import capture_cases
from toolprior.probes.experiment import ProbeExperimentConfig, load_agent, validate_config
from toolprior.probes.folds import task_rows
from toolprior.probes.hook_points import all_hook_names
from toolprior.probes.layer_curve import fit_layer_curve
from toolprior.probes.logit_lens import logit_lens
from toolprior.probes.markdown import render_probe_markdown
from toolprior.probes.patching import patch_heads, patch_resid
from toolprior.probes.patching_compare import compare_patching
from toolprior.probes.positions import THINK_RULES
from toolprior.probes.report import (
    json_safe,
    plot_head_map,
    plot_layer_curve,
    plot_logit_lens,
    plot_patching_comparison,
    plot_patching_map,
    probe_block,
)
from toolprior.probes.store import STORE_DTYPES, ActivationStore
from toolprior.probes.twins import twin_pairs

# ------------------------------------------------------------------------------------------------------------- helpers


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def select_cases(config: ProbeExperimentConfig, *, limit: bool = True) -> list[Any]:
    """The cases of `config.data` in its splits, the first `data.max_cases` of them when `limit`."""
    cases = [c for c in read_case_files(config.data.cases) if c.split in config.data.splits]
    if limit and config.data.max_cases is not None:
        cases = cases[: config.data.max_cases]
    if not cases:
        raise InputError(
            Problem(",".join(config.data.cases), None, "data.splits", f"no cases in splits {config.data.splits}")
        )
    return cases


def _usable(cases: list[Any], position: str) -> list[Any]:
    return [c for c in cases if position not in THINK_RULES or c.gold is not None]


def _name(*parts: str) -> str:
    return "__".join(parts)


def _fit_curves(
    config: ProbeExperimentConfig, acts: Any, cases: list[Any], kind: str, progress: bool
) -> dict[tuple[str, str], Any]:
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


# ---------------------------------------------------------------------------------------------------------- the runner


def run_probe_experiment(
    config: ProbeExperimentConfig, out_dir: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> dict[str, Any]:
    """Run the experiment `config` describes into `out_dir` (default `config.output_dir`); returns the summary
    (also written to summary.json) whose "probe" key is the report contract's block."""
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
    report_key: tuple[str, str, str, str] | None = (
        config.report.position,
        "resid_post",
        config.report.task,
        config.report.method,
    )
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
