"""Cross-validated probe scores: fit on each fold's training rows, score on its held-out rows.

Reported per fold: accuracy, balanced accuracy, AUROC (binary; macro one-vs-rest for five_way, over the classes
present in a test fold). The folds come from `probes.folds` (grouped by surface template for every reported score).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from toolprior.probes.fit import DEFAULT_C, as_matrix, fit_context, fit_prepared


@dataclass
class CVScores:
    """Per-fold scores of one probe family on one set of labels (NaN where a fold cannot score AUROC)."""

    acc: list[float]
    balanced_acc: list[float]
    auroc: list[float]

    def mean(self, name: str) -> float:
        values = [v for v in getattr(self, name) if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    def std(self, name: str) -> float:
        values = [v for v in getattr(self, name) if not math.isnan(v)]
        return float(np.std(values)) if values else math.nan


def _auroc(y: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]) -> float:
    """Binary: AUROC of P(classes[1]); multi: macro one-vs-rest over classes with positives and negatives here."""
    if len(classes) == 2:
        positive = y == classes[1]
        if positive.all() or not positive.any():
            return math.nan
        return float(roc_auc_score(positive, proba[:, 1]))
    scores = []
    for k, c in enumerate(classes):
        positive = y == c
        if positive.any() and not positive.all():
            scores.append(float(roc_auc_score(positive, proba[:, k])))
    return float(np.mean(scores)) if scores else math.nan


def _balanced_acc(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [float(np.mean(pred[y == c] == c)) for c in sorted(set(y.tolist()))]
    return float(np.mean(recalls)) if recalls else math.nan


def cross_validate(
    x: torch.Tensor | np.ndarray,
    y: Sequence[str] | np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    classes: tuple[str, ...],
    method: str = "logreg",
    C: float | str = DEFAULT_C,
    groups: Sequence[str] | np.ndarray | None = None,
    train_labels: Iterator[np.ndarray] | None = None,
    test_labels: Sequence[str] | np.ndarray | None = None,
    seed: int = 0,
) -> CVScores:
    """Fit on each fold's training rows, score on its test rows.

    `train_labels`: optional labels to TRAIN on per fold (one array per fold, over the whole row set; the
    permutation baseline passes labels shuffled within the training fold). `test_labels`: labels to SCORE against
    (default `y`)."""
    features = as_matrix(x)
    labels = np.asarray([str(v) for v in y])
    truth = labels if test_labels is None else np.asarray([str(v) for v in test_labels])
    group_arr = None if groups is None else np.asarray([str(v) for v in groups])
    with fit_context(features.size):
        return _cross_validate(features, labels, truth, splits, classes, method, C, group_arr, train_labels, seed)


def _cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    classes: tuple[str, ...],
    method: str,
    C: float | str,
    group_arr: np.ndarray | None,
    train_labels: Iterator[np.ndarray] | None,
    seed: int,
) -> CVScores:
    acc, bal, auc = [], [], []
    for train, test in splits:
        fit_on = labels if train_labels is None else next(train_labels)
        present = sorted(set(fit_on[train].tolist()))
        if len(present) < 2:  # nothing to separate: the fold's probe can only say its one class
            pred = np.full(len(test), present[0])
            proba = np.asarray([[1.0 if c == present[0] else 0.0 for c in classes]] * len(test))
        else:
            order = [c for c in classes if c in present]
            probe = fit_prepared(
                features[train], fit_on[train], order, method, C, None if group_arr is None else group_arr[train], seed
            )
            p = probe._proba_np(features[test])
            proba = np.zeros((len(test), len(classes)))
            for k, c in enumerate(probe.classes):
                proba[:, classes.index(c)] = p[:, k]
            pred = np.asarray(probe.labels_of(p))
        acc.append(float(np.mean(pred == truth[test])))
        bal.append(_balanced_acc(truth[test], pred))
        auc.append(_auroc(truth[test], proba, classes))
    return CVScores(acc, bal, auc)
