"""Fitting one linear probe, and calibrating a binary probe's threshold.

    probe = fit_probe(x, y, "logreg", classes=("call_tool", "clarify"))
    thr = calibrate_threshold(probe.predict_proba(x_mine)[:, 1], y_mine == "clarify", "recall@0.9")

Methods (`METHODS`):

- ``logreg``: features standardised (per-dimension mean and std of the training rows), L2 logistic regression
  (sklearn lbfgs, multinomial for five_way), `class_weight="balanced"` so that a probe cannot score by predicting
  the majority class. C is FIXED by default (`DEFAULT_C` = 0.1, i.e. fairly strong L2 on standardised features):
  the same probe family at every layer, for the real task and the control task alike, so differences along the
  curve and the selectivity compare like with like (Hewitt & Liang's advice to compare at matched complexity).
  `C="cv"` picks C from `C_GRID` by an inner grouped CV inside each outer training fold (nested: the held-out
  fold never influences C); it costs len(C_GRID) x 3 extra fits per fold.
- ``mass_mean``: difference of class means (Marks & Tegmark's mass-mean probe) on CENTRED but not scaled
  activations, so its direction is the class-mean difference in the activation space itself (what a steering
  vector adds), not a discriminative direction. Binary: score = a * (mu_clarify - mu_call)·(x - midpoint) + b with
  (a, b) fitted by a one-feature balanced logistic regression (Platt scaling; a > 0 on any separable data).
  Five-way: nearest class mean, score_c = (m_c·x - |m_c|^2 / 2) / T with a single temperature T fitted on the
  training rows' log-loss.

The probe itself and its saved form: `probes.linear_probe`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve
from threadpoolctl import threadpool_limits

from toolprior.probes.folds import grouped_folds
from toolprior.probes.linear_probe import LinearProbe

METHODS: tuple[str, ...] = ("logreg", "mass_mean")
DEFAULT_C = 0.1
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
SMALL_PROBLEM = 4_000_000  # activation values below which probe fits run on one BLAS thread


def as_matrix(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """`x` as a float64 [N, features] numpy array (extra dimensions flattened)."""
    array = x.detach().to("cpu", torch.float64).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
    return array.reshape(array.shape[0], -1)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)


def fit_probe(
    x: torch.Tensor | np.ndarray,
    y: Sequence[str] | np.ndarray,
    method: str = "logreg",
    C: float | str = DEFAULT_C,
    *,
    classes: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    seed: int = 0,
) -> LinearProbe:
    """Fit one probe on activations `x` [N, d] (or [N, heads, head_dim], flattened) and labels `y`.

    `classes`: the label order (default: sorted labels present; the binary task's is ("call_tool", "clarify")).
    Classes absent from `y` are dropped from the probe. `C="cv"` (logreg) chooses C from `C_GRID` by grouped inner
    CV over `groups` (required then)."""
    if method not in METHODS:
        raise ValueError(f"unknown probe method {method!r}; expected one of {', '.join(METHODS)}")
    features = as_matrix(x)
    labels = np.asarray([str(v) for v in y])
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"{features.shape[0]} activation rows but {labels.shape[0]} labels")
    present = set(labels.tolist())
    order = [c for c in (classes or sorted(present)) if c in present]
    if not order:
        raise ValueError("no labelled rows to fit a probe on")
    with fit_context(features.size):
        return fit_prepared(features, labels, order, method, C, groups, seed)


def fit_prepared(
    features: np.ndarray,
    labels: np.ndarray,
    order: list[str],
    method: str,
    C: float | str,
    groups: Sequence[str] | np.ndarray | None,
    seed: int,
) -> LinearProbe:
    """`fit_probe` on checked arrays: `order` holds the classes present, `labels` the string label per row."""
    index = np.asarray([order.index(v) for v in labels])
    if method == "mass_mean":
        return _fit_mass_mean(features, index, tuple(order))
    if C == "cv":
        if groups is None:
            raise ValueError("C='cv' needs groups for the inner grouped cross-validation")
        C = _choose_c(features, labels, np.asarray([str(g) for g in groups]), tuple(order), seed)
    if not isinstance(C, (int, float)) or isinstance(C, bool) or C <= 0:
        raise ValueError(f"C must be a positive number or 'cv', got {C!r}")
    return _fit_logreg(features, index, tuple(order), float(C))


@contextlib.contextmanager
def fit_context(n_values: int) -> Iterator[None]:
    """One BLAS thread for small problems (lbfgs on a few hundred rows is ~10x slower with threads that spin-wait
    on a busy CPU than on one; large problems keep the library's default), and no repeated input validation
    (the features were checked once, here)."""
    limits = threadpool_limits(limits=1) if n_values < SMALL_PROBLEM else contextlib.nullcontext()
    with limits, sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        yield


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature carries nothing; leave it unscaled rather than divide by 0
    return (x - mean) / scale, mean, scale


def _fit_logreg(x: np.ndarray, index: np.ndarray, classes: tuple[str, ...], C: float) -> LinearProbe:
    z, mean, scale = _standardise(x)
    d = x.shape[1]
    if len(classes) == 1:
        return LinearProbe(
            classes, _tensor(np.zeros((1, d))), _tensor(np.zeros(1)), _tensor(mean), _tensor(scale), "logreg", C
        )
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)  # lbfgs on separable data; C bounds the weights
        model.fit(z, index)
    coef = model.coef_
    intercept = model.intercept_
    return LinearProbe(classes, _tensor(coef), _tensor(intercept), _tensor(mean), _tensor(scale), "logreg", C)


def _fit_mass_mean(x: np.ndarray, index: np.ndarray, classes: tuple[str, ...]) -> LinearProbe:
    mean = x.mean(axis=0)
    scale = np.ones_like(mean)
    centred = x - mean
    d = x.shape[1]
    if len(classes) == 1:
        return LinearProbe(
            classes, _tensor(np.zeros((1, d))), _tensor(np.zeros(1)), _tensor(mean), _tensor(scale), "mass_mean"
        )
    means = np.stack([centred[index == k].mean(axis=0) for k in range(len(classes))])  # centred class means
    if len(classes) == 2:
        theta = means[1] - means[0]
        mid = (means[0] + means[1]) / 2
        proj = (centred - mid) @ theta
        spread = float(proj.std()) or 1.0
        platt = LogisticRegression(C=1e4, class_weight="balanced", max_iter=2000).fit((proj / spread)[:, None], index)
        a = float(platt.coef_[0, 0]) / spread
        b = float(platt.intercept_[0])
        coef = (a * theta)[None, :]
        intercept = np.asarray([b - a * float(mid @ theta)])
        return LinearProbe(classes, _tensor(coef), _tensor(intercept), _tensor(mean), _tensor(scale), "mass_mean")
    raw = centred @ means.T - 0.5 * (means**2).sum(axis=1)  # nearest class mean, as a linear score
    temperature = _fit_temperature(raw, index)
    coef = means / temperature
    intercept = -0.5 * (means**2).sum(axis=1) / temperature
    return LinearProbe(classes, _tensor(coef), _tensor(intercept), _tensor(mean), _tensor(scale), "mass_mean")


def _fit_temperature(scores: np.ndarray, index: np.ndarray) -> float:
    """The T minimising the log-loss of softmax(scores / T): a log-spaced grid around the scores' own scale."""
    spread = float(scores.std()) or 1.0
    best, best_loss = spread, math.inf
    for t in spread * np.logspace(-3, 2, 61):
        z = scores / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float(log_p[np.arange(len(index)), index].mean())
        if loss < best_loss:
            best, best_loss = float(t), loss
    return best


def _choose_c(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, classes: tuple[str, ...], seed: int) -> float:
    best_c, best_acc = DEFAULT_C, -1.0
    splits = grouped_folds(labels, groups, folds=3, seed=seed)
    if len(splits) < 2:
        return DEFAULT_C
    for c in C_GRID:
        accs = []
        for train, test in splits:
            if len(set(labels[train].tolist())) < 2:
                continue
            present = [k for k in classes if k in set(labels[train].tolist())]
            probe = fit_prepared(x[train], labels[train], present, "logreg", c, None, seed)
            accs.append(float(np.mean(np.asarray(probe.labels_of(probe._proba_np(x[test]))) == labels[test])))
        acc = float(np.mean(accs)) if accs else -1.0
        if acc > best_acc + 1e-12:
            best_c, best_acc = c, acc
    return best_c


def calibrate_threshold(
    scores: torch.Tensor | np.ndarray | Sequence[float],
    y: torch.Tensor | np.ndarray | Sequence[Any],
    target: str = "balanced",
) -> float:
    """A threshold on a binary probe's scores (usually P(positive)) for the decision `score >= threshold`.

    `y`: 1 / True for the positive class. `target`:

    - ``"balanced"``: maximises balanced accuracy (TPR + TNR) / 2 (Youden's J) on these rows;
    - ``"recall@R"`` (e.g. ``"recall@0.9"``): the HIGHEST threshold whose recall of the positive class is >= R, so
      the probe flags at least R of the positives with as few false alarms as possible.

    Use rows the probe was not fitted on (held-out folds, the mine split) or the threshold is optimistic.

        thr = calibrate_threshold(probe.predict_proba(x_mine)[:, 1], y_mine == "clarify", "recall@0.9")
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64).ravel()
    t = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y).astype(bool).ravel()
    if s.shape != t.shape:
        raise ValueError(f"{s.shape[0]} scores but {t.shape[0]} labels")
    if t.all() or not t.any():
        raise ValueError("calibrate_threshold needs both positive and negative rows")
    fpr, tpr, thresholds = roc_curve(t, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    wanted = parse_calibration_target(target)
    if wanted is None:
        return float(thresholds[int(np.argmax(tpr - fpr))])
    hits = np.nonzero(tpr >= wanted - 1e-12)[0]
    return float(thresholds[hits[0]])  # thresholds descend: the first hit is the highest threshold


def parse_calibration_target(target: str) -> float | None:
    """`"balanced"` -> None, `"recall@0.9"` -> 0.9; ValueError for anything else (configs check it up front)."""
    if target == "balanced":
        return None
    if isinstance(target, str) and target.startswith("recall@"):
        try:
            wanted = float(target.split("@", 1)[1])
        except ValueError:
            raise ValueError(f"bad calibration target {target!r}; expected e.g. 'recall@0.9'") from None
        if not 0 < wanted <= 1:
            raise ValueError(f"recall target must be in (0, 1], got {wanted}")
        return wanted
    raise ValueError(f"unknown calibration target {target!r}; expected 'balanced' or 'recall@R'")
