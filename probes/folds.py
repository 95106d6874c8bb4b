"""The rows a probe task uses, and the folds it is scored on.

Tasks (`TASKS`): ``clarify_vs_call_tool`` (binary on the rows labelled clarify or call_tool; the positive class is
clarify, so directions point from call_tool toward clarify) and ``five_way`` (multinomial over the five actions).

Cross-validation: `grouped_folds` = sklearn `StratifiedGroupKFold` on the surface templates (`Case.template`, i.e.
`meta.template`): grouped K-fold with class-balanced folds; every template lies wholly in one test fold, so a
probe cannot win by memorising a template. `stratified_folds` (ungrouped) exists only to measure what a probe can
memorise (see `probes.controls`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from toolprior.actions import ACTION_NAMES

TASKS: tuple[str, ...] = ("clarify_vs_call_tool", "five_way")
BINARY_CLASSES: tuple[str, str] = ("call_tool", "clarify")  # positive class last, as sklearn orders it


def task_rows(labels: Sequence[str], task: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """(indices of the rows `task` uses, its classes in order)."""
    if task == "clarify_vs_call_tool":
        classes: tuple[str, ...] = BINARY_CLASSES
    elif task == "five_way":
        classes = ACTION_NAMES
    else:
        raise ValueError(f"unknown probe task {task!r}; expected one of {', '.join(TASKS)}")
    rows = np.asarray([i for i, label in enumerate(labels) if str(label) in classes], dtype=np.int64)
    return rows, classes


def grouped_folds(
    labels: Sequence[str] | np.ndarray, groups: Sequence[str] | np.ndarray, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) per fold: `StratifiedGroupKFold` over `groups` (surface templates), shuffled by
    `seed`. No group ever appears on both sides of a fold. Folds = min(`folds`, number of groups)."""
    y = np.asarray([str(v) for v in labels])
    g = np.asarray([str(v) for v in groups])
    if y.shape != g.shape:
        raise ValueError(f"{y.shape[0]} labels but {g.shape[0]} groups")
    n_groups = len(set(g.tolist()))
    k = min(folds, n_groups)
    if k < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 groups (templates); got {n_groups}")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # "least populated class has only n members"
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y, g)]


def stratified_folds(
    labels: Sequence[str] | np.ndarray, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ungrouped, class-stratified folds: templates may sit on both sides. Only for measuring what a probe can
    memorise (the Hewitt & Liang control's original quantity, see `probes.controls`); never for reported scores."""
    y = np.asarray([str(v) for v in labels])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]
