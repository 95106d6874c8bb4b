"""PNG plots of scores (the per-method blocks that `evals.scoring.score` returns). No screen needed: figures are
drawn with matplotlib's Agg canvas directly (pyplot's global state is never touched), and every file is written
to a temporary name in the target folder, then moved into place with os.replace."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from toolprior.actions import ACTION_NAMES
from toolprior.figures import save_figure
from toolprior.verdict import UNPARSED

_save = save_figure


def _acc_err(blocks: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies and asymmetric error-bar lengths [2, n] from {acc, ci95} blocks (a missing acc is NaN: no bar)."""
    acc = np.array([b.get("acc") if b.get("acc") is not None else np.nan for b in blocks], dtype=float)
    lo = np.array([(b.get("ci95") or [a, a])[0] for b, a in zip(blocks, acc, strict=True)], dtype=float)
    hi = np.array([(b.get("ci95") or [a, a])[1] for b, a in zip(blocks, acc, strict=True)], dtype=float)
    err = np.vstack([np.clip(acc - lo, 0, None), np.clip(hi - acc, 0, None)])
    return acc, np.where(np.isnan(acc), 0.0, err)


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def plot_per_action(
    report: Mapping[str, Any], path: str | os.PathLike[str], title: str = "Accuracy per action"
) -> Path:
    """Bars of accuracy per expected action with Wilson 95% interval error bars; n under each label."""
    per_action: Mapping[str, Any] = report.get("per_action") or {}
    actions = list(per_action)
    fig = Figure(figsize=(max(4.0, 1.3 * len(actions) + 1.5), 3.8))
    ax = fig.add_subplot()
    if actions:
        blocks = [per_action[a] for a in actions]
        acc, err = _acc_err(blocks)
        x = np.arange(len(actions))
        ax.bar(x, acc, yerr=err, capsize=4, color="#4C72B0")
        ax.set_xticks(x, [f"{a}\n(n={b.get('n', '?')})" for a, b in zip(actions, blocks, strict=True)], fontsize=8)
        for xi, a in enumerate(acc):
            if np.isnan(a):
                continue
            ax.text(xi, min(a + 0.02, 0.97), f"{a:.2f}", ha="center", va="bottom", fontsize=8)
    else:
        _no_data(ax)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_per_category(
    report: Mapping[str, Any], path: str | os.PathLike[str], title: str = "Accuracy per category"
) -> Path:
    """Horizontal bars of accuracy per category with Wilson 95% intervals; categories top to bottom in the
    report's order."""
    per_category: Mapping[str, Any] = report.get("per_category") or {}
    cats = list(per_category)
    fig = Figure(figsize=(7.0, max(2.5, 0.38 * len(cats) + 1.2)))
    ax = fig.add_subplot()
    if cats:
        blocks = [per_category[c] for c in cats]
        acc, err = _acc_err(blocks)
        y = np.arange(len(cats))
        ax.barh(y, acc, xerr=err, capsize=3, color="#55A868")
        ax.set_yticks(y, [f"{c} (n={b.get('n', '?')})" for c, b in zip(cats, blocks, strict=True)], fontsize=8)
        ax.invert_yaxis()
    else:
        _no_data(ax)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("accuracy")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_confusion(report: Mapping[str, Any], path: str | os.PathLike[str], title: str = "Confusion") -> Path:
    """Heat map of expected (rows) against predicted (columns, "unparsed" last), coloured by the row share and
    annotated with counts."""
    confusion: Mapping[str, Mapping[str, int]] = report.get("confusion") or {}
    rows = list(confusion)
    seen = {p for r in rows for p in confusion[r]}
    cols = [a for a in ACTION_NAMES if a in seen] + sorted(seen - set(ACTION_NAMES) - {UNPARSED})
    cols += [UNPARSED] if UNPARSED in seen else []
    fig = Figure(figsize=(max(4.5, 1.2 * len(cols) + 2.5), max(3.0, 0.7 * len(rows) + 1.8)))
    ax = fig.add_subplot()
    if rows and cols:
        counts = np.array([[confusion[r].get(c, 0) for c in cols] for r in rows], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                ax.text(
                    j,
                    i,
                    str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share[i, j] > 0.6 else "black",
                )
        ax.set_xticks(np.arange(len(cols)), cols, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(np.arange(len(rows)), rows, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("expected")
        fig.colorbar(im, ax=ax, label="share of row")
    else:
        _no_data(ax)
    ax.set_title(title)
    return _save(fig, path)


def plot_methods_per_action(
    reports: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    title: str = "Accuracy per action by method",
) -> Path:
    """Grouped bars: one group per expected action, one bar per method, with Wilson 95% error bars."""
    methods = list(reports)
    present = {a for r in reports.values() for a in (r.get("per_action") or {})}
    actions = [a for a in ACTION_NAMES if a in present] + sorted(present - set(ACTION_NAMES))
    fig = Figure(figsize=(max(5.0, 1.1 * len(actions) * max(1, len(methods)) ** 0.5 + 2.5), 4.0))
    ax = fig.add_subplot()
    if methods and actions:
        width = 0.8 / len(methods)
        x = np.arange(len(actions))
        for i, m in enumerate(methods):
            per_action = reports[m].get("per_action") or {}
            blocks = [per_action.get(a, {}) for a in actions]
            acc, err = _acc_err(blocks)
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, acc, width, yerr=err, capsize=3, label=m)
        ax.set_xticks(x, actions, fontsize=8)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _no_data(ax)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
