"""Plots written as PNG atomically: a temporary file beside the target, then os.replace (via toolprior.atomic)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_open

DPI = 120


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Write a matplotlib figure as PNG; a plot is never seen half-written. Works without pyplot's global state."""
    # lazy: matplotlib is needed only when a plot is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)
