"""What probe experiments report: the `probe` block of report.json, and PNG plots.

    block = probe_block(curve, base=base_curve)
    # {"position": "decision", "task": ..., "method": ..., "best_layer": 3,
    #  "layers": [{"layer": 0, "acc": 0.6, "control_acc": 0.5, "selectivity": 0.1, ...}, ...]}
    plot_layer_curve(curve, "plots/probe_layers.png", base=base_curve)
    plot_patching_map(result, "plots/patching_resid.png")
    plot_head_map(head_result, "plots/patching_heads.png")

`best_layer` is the layer with the best held-out accuracy among the layers with selectivity > 0 (None when none has
any). Plots are drawn on matplotlib's Agg canvas without pyplot's global state, and written to a temporary file in
the target folder that is then moved into place (os.replace), so a plot is never seen half-written.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolprior.atomic import atomic_write_text
from toolprior.figures import save_figure
from toolprior.probes.layer_curve import LayerCurve
from toolprior.probes.logit_lens import LensResult
from toolprior.probes.patching_result import PatchingResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float):
        return round(value, 6)
    return value


def json_safe(value: Any) -> Any:
    """`value` with every NaN / infinite float turned into None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def probe_block(curve: LayerCurve, base: LayerCurve | None = None) -> dict[str, Any]:
    """The `probe` block of the results contract from a layer curve (plus `base_acc` per layer from the base
    model's curve, when given). Extra keys beyond the contract's (auroc, perm_acc, hook, n, ...) are additions."""
    best = curve.best()
    base_rows = {r.hook: r for r in base.rows} if base is not None else {}
    layers = []
    for row in curve.rows:
        entry: dict[str, Any] = {
            "layer": row.layer,
            "acc": row.acc,
            "control_acc": row.control_acc,
            "selectivity": row.selectivity,
            "acc_std": row.acc_std,
            "auroc": row.auroc,
            "perm_acc": row.perm_acc,
            "perm_p": row.perm_p,
            "hook": row.hook,
            "n": row.n,
        }
        if row.hook in base_rows:
            entry["base_acc"] = base_rows[row.hook].acc
            entry["base_selectivity"] = base_rows[row.hook].selectivity
        layers.append({k: _clean(v) for k, v in entry.items()})
    return {
        "position": curve.position,
        "task": curve.task,
        "method": curve.method,
        "best_layer": None if best is None else best.layer,
        "best_hook": None if best is None else best.hook,
        "n": curve.n,
        "templates": curve.n_groups,
        "folds": curve.folds,
        "cv": "StratifiedGroupKFold by surface template",
        "C": curve.C,
        "permutations": curve.permutations,
        "chance": _clean(curve.rows[0].chance) if curve.rows else None,
        "layers": layers,
    }


def merge_probe_block(report_path: str | os.PathLike[str], block: Mapping[str, Any]) -> dict[str, Any]:
    """Put `block` under "probe" in an existing (or new) report.json, keeping every other key."""
    path = Path(report_path)
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    report["probe"] = json_safe(dict(block))
    atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


# ------------------------------------------------------------------------------------------------------ plots


def _figure(width: float = 6.4, height: float = 4.0) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib is heavy and only plots need it

    return Figure(figsize=(width, height))


def _nan(values: list[float]) -> np.ndarray:
    return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)


def plot_layer_curve(
    curve: LayerCurve, path: str | os.PathLike[str], base: LayerCurve | None = None, title: str | None = None
) -> Path:
    """Held-out probe accuracy per layer (error bars: std across grouped folds), the Hewitt & Liang control, the
    permutation baseline, the majority-class rate and, when given, the base model's curve."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(curve.rows))
    labels = [
        str(r.layer) if r.hook.endswith("hook_resid_post") else r.hook.removeprefix("blocks.") for r in curve.rows
    ]
    ax.errorbar(
        x,
        _nan([r.acc for r in curve.rows]),
        yerr=_nan([r.acc_std for r in curve.rows]),
        marker="o",
        capsize=3,
        label="probe (held-out templates)",
    )
    ax.plot(
        x, _nan([r.control_acc for r in curve.rows]), marker="s", linestyle="--", label="control task (per template)"
    )
    perm = _nan([r.perm_acc for r in curve.rows])
    if not np.isnan(perm).all():
        ax.plot(x, perm, marker="^", linestyle=":", label="permuted labels")
    if base is not None:
        by_hook = {r.hook: r.acc for r in base.rows}
        ax.plot(
            x, _nan([by_hook.get(r.hook, math.nan) for r in curve.rows]), marker="d", linestyle="-.", label="base model"
        )
    if curve.rows:
        ax.axhline(curve.rows[0].chance, color="grey", linewidth=0.8, label="majority class")
    best = curve.best()
    if best is not None:
        ax.axvline(curve.rows.index(best), color="black", linewidth=0.6, alpha=0.5)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=0 if len(x) <= 24 else 90, fontsize=8)
    ax.set_xlabel("layer (block output)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(
        title or f"{curve.task} / {curve.method} at {curve.position} (n={curve.n}, {curve.n_groups} templates)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def _heat(ax: Any, grid: np.ndarray, rows: list[str], cols: list[str], label: str) -> None:
    finite = grid[np.isfinite(grid)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = max(bound, 1e-6)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto", interpolation="nearest")
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xticks(np.arange(len(cols)))
    ax.set_xticklabels(cols, fontsize=7)
    ax.figure.colorbar(image, ax=ax, label=label, shrink=0.8)


def plot_patching_map(result: PatchingResult, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Layer x position heat maps (one panel per direction) read the same way: 0 = the patch does nothing, 1 = it
    carries the whole clean-vs-corrupted difference. Denoising shows the normalised score (share restored), noising
    1 - the normalised score (share removed). Positions count back from the last token (where the metric is read)."""
    directions = list(result.maps)
    fig = _figure(5.0 * len(directions), 1.3 + 0.28 * len(result.layers))
    for i, direction in enumerate(directions):
        ax = fig.add_subplot(1, len(directions), i + 1)
        grid = result.normalised(direction).numpy()
        if direction == "noise":
            grid = 1.0 - grid
        if result.kind == "resid_post":
            grid = grid[:, ::-1]  # earliest position left, the last token right
            cols = [f"-{c}" if c else "last" for c in result.columns[::-1]]
        else:
            cols = [str(c) for c in result.columns]
        _heat(ax, grid, [str(layer) for layer in result.layers], cols, "share of the effect")
        ax.set_ylabel("layer")
        ax.set_xlabel("position from the end" if result.kind == "resid_post" else "head")
        what = "share restored" if direction == "denoise" else "share removed"
        ax.set_title(f"{result.method} {direction}: {what}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, y=1.0)
        fig.subplots_adjust(top=0.8)
    return save_figure(fig, path)


def plot_head_map(result: PatchingResult, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Layer x head heat maps of the normalised score of patching one head's z at the last position."""
    return plot_patching_map(
        result, path, title=title or f"per-head patching ({result.method}, hook_z at the last token)"
    )


def plot_patching_comparison(
    exact: PatchingResult, approx: PatchingResult, path: str | os.PathLike[str], direction: str = "denoise"
) -> Path:
    """Scatter of exact vs attribution-estimated effects, one point per cell, coloured by layer."""
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    e = exact.effect(direction).numpy()
    a = approx.effect(direction).numpy()
    layer_of = np.repeat(np.asarray(exact.layers, dtype=np.float64)[:, None], e.shape[1], axis=1)
    ok = np.isfinite(e) & np.isfinite(a)
    points = ax.scatter(e[ok], a[ok], c=layer_of[ok], cmap="viridis", s=14)
    if ok.any():
        lo = float(min(e[ok].min(), a[ok].min()))
        hi = float(max(e[ok].max(), a[ok].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
    fig.colorbar(points, ax=ax, label="layer", shrink=0.8)
    ax.set_xlabel("exact effect (metric units)")
    ax.set_ylabel("attribution estimate")
    ax.set_title(f"{exact.kind} {direction}: exact vs attribution", fontsize=9)
    return save_figure(fig, path)


def plot_logit_lens(lens: LensResult, path: str | os.PathLike[str]) -> Path:
    """Mean prior gap (logit <tool_call> - logit correct tag) per layer, one line per expected action."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for action, values in lens.per_action().items():
        ax.plot(lens.layers, values, marker="o", label=action)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("layer (logit lens of the block output)")
    ax.set_ylabel("logit(<tool_call>) - logit(correct tag)")
    ax.set_title(f"call-tool prior by depth at {lens.position}", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
