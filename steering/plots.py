"""Plots of sweeps and controls (matplotlib, Agg backend, PNG).

plot_dose_response(result, layer=2, path="plots/dose_response.png")
plot_heatmap(result, "plots/layer_alpha.png", metric="clarify_acc")
plot_controls(control_result, "plots/controls.png")
plot_cosine_hist(consistency, "plots/cosine.png")
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolprior.evals.statistics import wilson_interval
from toolprior.figures import save_figure

if TYPE_CHECKING:
    from toolprior.steering.consistency import CosineConsistency
    from toolprior.steering.sweep import SweepPoint, SweepResult


def _figure(*size: float) -> tuple[Any, Any]:
    # lazy: matplotlib is needed only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is needed only when a plot is drawn
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    # lazy: matplotlib is needed only when a plot is drawn
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _wilson(acc: float | None, n: int) -> tuple[float, float, float]:
    """(acc, lower error, upper error) with the Wilson 95% interval; NaNs where there is nothing."""

    if acc is None or n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = wilson_interval(round(acc * n), n)
    return acc, acc - lo, hi - acc


def plot_dose_response(result: SweepResult, layer: int, path: str | os.PathLike[str]) -> Path:
    """Clarify and call_tool accuracy against alpha (both signs) at `layer`, with Wilson 95% bars; the unsteered
    baseline as dotted lines."""
    points = sorted((p for p in result.points if p.label == "vector" and p.layer == layer), key=lambda p: p.alpha)
    if not points:
        raise ValueError(f"the sweep has no points at layer {layer}")
    fig, ax = _figure(6.0, 4.0)
    alphas = [p.alpha for p in points]
    for action, color in (("clarify", "tab:blue"), ("call_tool", "tab:orange")):
        stats = [_wilson(getattr(p, f"{action}_acc"), getattr(p, f"{action}_n")) for p in points]
        ax.errorbar(
            alphas,
            [s[0] for s in stats],
            yerr=[[s[1] for s in stats], [s[2] for s in stats]],
            marker="o",
            capsize=3,
            color=color,
            label=f"{action} accuracy",
        )
        base = getattr(result.baseline, f"{action}_acc")
        if base is not None:
            ax.axhline(base, color=color, linestyle=":", linewidth=1)
    ax.axvline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("alpha")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"dose-response at layer {layer} ({', '.join(result.splits)}, n={len(result.case_ids)})")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_heatmap(result: SweepResult, path: str | os.PathLike[str], metric: str = "clarify_acc") -> Path:
    """`metric` over layer x alpha."""
    layers, alphas, values = result.grid(metric)
    fig, ax = _figure(1.2 + 0.6 * len(alphas), 1.2 + 0.45 * len(layers))
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0 if metric != "moved_wrong" else None)
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(layers)), [str(x) for x in layers])
    ax.set_xlabel("alpha")
    ax.set_ylabel("layer")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value < 0.6 else "black",
                )
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} by layer and alpha")
    return _save(fig, path)


def plot_controls(result: SweepResult, path: str | os.PathLike[str]) -> Path:
    """Clarify and call_tool accuracy of the vector next to its controls (Wilson 95% bars) and the baseline."""
    points: list[SweepPoint] = [result.baseline, *result.points]
    fig, ax = _figure(1.5 + 1.0 * len(points), 4.0)
    width = 0.38
    for k, (action, color) in enumerate((("clarify", "tab:blue"), ("call_tool", "tab:orange"))):
        stats = [_wilson(getattr(p, f"{action}_acc"), getattr(p, f"{action}_n")) for p in points]
        xs = [i + (k - 0.5) * width for i in range(len(points))]
        ax.bar(
            xs,
            [s[0] for s in stats],
            width,
            yerr=[[s[1] for s in stats], [s[2] for s in stats]],
            capsize=3,
            color=color,
            label=f"{action} accuracy",
        )
    ax.set_xticks(range(len(points)), [p.label for p in points], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("accuracy")
    alpha = result.points[0].alpha if result.points else 0.0
    ax.set_title(f"vector vs controls at alpha {alpha:g}")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def plot_cosine_hist(consistency: CosineConsistency, path: str | os.PathLike[str], bins: int = 20) -> Path:
    """Histogram of each pair's cosine with the mean difference, with the mean pairwise cosine marked."""
    fig, ax = _figure(5.0, 3.5)
    ax.hist(consistency.with_mean, bins=bins, range=(-1.0, 1.0), color="tab:blue", alpha=0.8)
    ax.axvline(
        consistency.mean_pairwise, color="black", linestyle="--", label=f"mean pairwise {consistency.mean_pairwise:.2f}"
    )
    ax.set_xlabel("cosine of a pair's difference with the mean difference")
    ax.set_ylabel("pairs")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)
