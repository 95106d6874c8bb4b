"""Linear probes per hook point, cross-validated by SURFACE TEMPLATE, and the layer curve they make.

    curve = fit_layer_curve(acts, acts.labels, [c.template for c in cases], task="clarify_vs_call_tool")
    curve.best()                      # the row with the best held-out accuracy among those with selectivity > 0
    probe = curve.probes["blocks.3.hook_resid_post"]
    probe.predict_proba(x)[:, 1]      # P(clarify), x in the ORIGINAL activation space
    probe.direction                   # unit vector toward clarify, in the original activation space

Tasks (`TASKS`): ``clarify_vs_call_tool`` (binary on the rows labelled clarify or call_tool; the positive class is
clarify, so directions point from call_tool toward clarify) and ``five_way`` (multinomial over the five actions).

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

Cross-validation: `grouped_folds` = sklearn `StratifiedGroupKFold` on the surface templates (`Case.template`, i.e.
`meta.template`): grouped K-fold with class-balanced folds; every template lies wholly in one test fold, so a
probe cannot win by memorising a template. Reported per row: accuracy (mean over folds, with its std across folds),
balanced accuracy, AUROC (binary; macro one-vs-rest for five_way, over the classes present in a test fold), the
Hewitt & Liang control accuracy and selectivity = acc - control_acc, and the permutation baseline (see
`probes.controls`).

Probes are saved as safetensors + a JSON sidecar (`ProbeWeights.save`), never pickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probes.capture import Activations
from probes.hook_points import parse_hook_name
from toolprior.actions import ACTION_NAMES
from toolprior.atomic import atomic_write_bytes, atomic_write_text
from toolprior.modeling import Fingerprint

TASKS: tuple[str, ...] = ("clarify_vs_call_tool", "five_way")
METHODS: tuple[str, ...] = ("logreg", "mass_mean")
BINARY_CLASSES: tuple[str, str] = ("call_tool", "clarify")  # positive class last, as sklearn orders it
DEFAULT_C = 0.1
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
SMALL_PROBLEM = 4_000_000  # activation values below which probe fits run on one BLAS thread
PROBE_FORMAT = "toolprior.probes"
PROBE_SIDECAR = "probes.json"
PROBE_TENSORS = "probes.safetensors"


# -------------------------------------------------------------------------------------------------- the probe


@dataclass
class LinearProbe:
    """A fitted linear probe: score = coef · ((x - mean) / scale) + intercept.

    `classes` are the labels it separates (binary: positive = classes[1]). `coef` is [k, d] with k = 1 for two
    classes, else one row per class; `mean` / `scale` are the standardisation (mass-mean: scale = 1).
    `threshold` applies to P(classes[1]) in `predict` (binary only; see `calibrate_threshold`)."""

    classes: tuple[str, ...]
    coef: torch.Tensor
    intercept: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    method: str = "logreg"
    C: float | None = None
    threshold: float = 0.5

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def _features(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(x)
        x = x.reshape(x.shape[0], -1) if x.dim() > 2 else x
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected activations [N, {self.dim}], got {tuple(x.shape)}")
        return x.to(torch.float64)

    @property
    def weights_original(self) -> torch.Tensor:
        """[k, d]: the weights on the raw activations (the scaler undone): score = x @ W.T + b_original."""
        return self.coef.to(torch.float64) / self.scale.to(torch.float64)

    @property
    def bias_original(self) -> torch.Tensor:
        """[k]: the intercept on the raw activations."""
        return self.intercept.to(torch.float64) - self.weights_original @ self.mean.to(torch.float64)

    def decision_function(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[N] scores (binary: the log-odds of classes[1]) or [N, k] class scores, computed in float64 on `x`'s
        device."""
        x = self._features(x)
        parts = [t.to(x.device, torch.float64) for t in (self.mean, self.scale, self.coef, self.intercept)]
        mean, scale, coef, intercept = parts
        scores = ((x - mean) / scale) @ coef.T + intercept
        return scores[:, 0] if self.binary else scores

    def predict_proba(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[N, len(classes)] probabilities (columns in `classes` order)."""
        if len(self.classes) == 1:
            x = self._features(x)
            return torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)
        return _proba(self.decision_function(x), self.binary)

    def predict(self, x: torch.Tensor | np.ndarray) -> list[str]:
        """Labels; binary probes say classes[1] where P(classes[1]) >= `threshold`."""
        return self.labels_of(self.predict_proba(x))

    def labels_of(self, proba: torch.Tensor | np.ndarray) -> list[str]:
        """The labels `predict` gives for these probabilities."""
        p = torch.as_tensor(proba)
        if len(self.classes) == 1:
            return [self.classes[0]] * p.shape[0]
        index = (p[:, 1] >= self.threshold).long() if self.binary else p.argmax(dim=1)
        return [self.classes[i] for i in index.tolist()]

    def _proba_np(self, x: np.ndarray) -> np.ndarray:
        """predict_proba in numpy (cross-validation's many small calls; torch's thread pool costs more than the
        arithmetic there)."""
        if len(self.classes) == 1:
            return np.ones((x.shape[0], 1))
        z = (x - self.mean.numpy()) / self.scale.numpy()
        scores = z @ self.coef.numpy().T + self.intercept.numpy()
        if self.binary:
            p = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0], -500, 500)))
            return np.stack([1 - p, p], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def direction(self) -> torch.Tensor:
        """[d] unit vector in the ORIGINAL activation space along which the binary probe's score grows (toward
        classes[1], clarify for the clarify_vs_call_tool task). Five-way probes: use `class_direction`."""
        if not self.binary:
            raise ValueError(f"a {len(self.classes)}-class probe has no single direction; use class_direction(label)")
        w = self.weights_original[0]
        return (w / w.norm()).to(torch.float32)

    def class_direction(self, label: str) -> torch.Tensor:
        """[d] unit vector in the original space that raises `label`'s score against the others (binary: +/-
        `direction`; multinomial: its weights minus the mean of all classes' weights, which is what softmax sees)."""
        if label not in self.classes:
            raise KeyError(f"{label!r} is not one of {self.classes}")
        if self.binary:
            return self.direction if label == self.classes[1] else -self.direction
        w = self.weights_original
        v = w[self.classes.index(label)] - w.mean(dim=0)
        return (v / v.norm()).to(torch.float32)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {
            f"{prefix}coef": self.coef.contiguous(),
            f"{prefix}intercept": self.intercept.contiguous(),
            f"{prefix}mean": self.mean.contiguous(),
            f"{prefix}scale": self.scale.contiguous(),
        }

    def header(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "method": self.method, "C": self.C, "threshold": self.threshold}

    @classmethod
    def from_parts(
        cls, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], prefix: str = ""
    ) -> LinearProbe:
        return cls(
            classes=tuple(header["classes"]),
            coef=tensors[f"{prefix}coef"],
            intercept=tensors[f"{prefix}intercept"],
            mean=tensors[f"{prefix}mean"],
            scale=tensors[f"{prefix}scale"],
            method=str(header.get("method", "logreg")),
            C=header.get("C"),
            threshold=float(header.get("threshold", 0.5)),
        )


def _proba(scores: torch.Tensor, binary: bool) -> torch.Tensor:
    if binary:
        p = torch.sigmoid(scores)
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(scores, dim=1)


def _as_matrix(x: torch.Tensor | np.ndarray) -> np.ndarray:
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
    features = _as_matrix(x)
    labels = np.asarray([str(v) for v in y])
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"{features.shape[0]} activation rows but {labels.shape[0]} labels")
    present = set(labels.tolist())
    order = [c for c in (classes or sorted(present)) if c in present]
    if not order:
        raise ValueError("no labelled rows to fit a probe on")
    with _fit_context(features.size):
        return _fit_probe(features, labels, order, method, C, groups, seed)


def _fit_probe(
    features: np.ndarray,
    labels: np.ndarray,
    order: list[str],
    method: str,
    C: float | str,
    groups: Sequence[str] | np.ndarray | None,
    seed: int,
) -> LinearProbe:
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
def _fit_context(n_values: int) -> Iterator[None]:
    """One BLAS thread for small problems (lbfgs on a few hundred rows is ~10x slower with threads that spin-wait
    on a busy CPU than on one; large problems keep the library's default), and no repeated input validation
    (the features were checked once, here)."""
    import sklearn
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=1) if n_values < SMALL_PROBLEM else contextlib.nullcontext()
    with limits, sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        yield


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant feature carries nothing; leave it unscaled rather than divide by 0
    return (x - mean) / scale, mean, scale


def _fit_logreg(x: np.ndarray, index: np.ndarray, classes: tuple[str, ...], C: float) -> LinearProbe:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

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
    from sklearn.linear_model import LogisticRegression

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
            probe = _fit_probe(x[train], labels[train], present, "logreg", c, None, seed)
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
    from sklearn.metrics import roc_curve

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


# --------------------------------------------------------------------------------------------- cross-validation


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
    from sklearn.model_selection import StratifiedGroupKFold

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
    from sklearn.metrics import roc_auc_score

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
    features = _as_matrix(x)
    labels = np.asarray([str(v) for v in y])
    truth = labels if test_labels is None else np.asarray([str(v) for v in test_labels])
    group_arr = None if groups is None else np.asarray([str(v) for v in groups])
    with _fit_context(features.size):
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
            probe = _fit_probe(
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


# --------------------------------------------------------------------------------------------- the layer curve


@dataclass
class LayerRow:
    """One hook point's held-out scores (means over grouped folds, with the std across folds)."""

    hook: str
    layer: int
    n: int
    acc: float
    acc_std: float
    balanced_acc: float
    auroc: float
    auroc_std: float
    control_acc: float
    control_acc_std: float
    selectivity: float
    perm_acc: float
    perm_acc_std: float
    perm_p: float
    chance: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerRow:
        return cls(**{k: (math.nan if data.get(k) is None else data[k]) for k in cls.__dataclass_fields__})


@dataclass
class LayerCurve:
    """Probe scores per hook point for one task x method x position, and the final probe of each hook point (fitted
    on all the task's rows, for later use: steering directions, conditional steering)."""

    task: str
    method: str
    position: str
    classes: tuple[str, ...]
    rows: list[LayerRow]
    probes: dict[str, LinearProbe] = field(default_factory=dict)
    n: int = 0
    n_groups: int = 0
    folds: int = 0
    C: float | str = DEFAULT_C
    seed: int = 0
    permutations: int = 1
    fingerprint: Fingerprint | None = None
    case_ids: list[str] = field(default_factory=list)
    fold_of: list[int] = field(default_factory=list)

    def row(self, hook: str) -> LayerRow:
        for r in self.rows:
            if r.hook == hook:
                return r
        raise KeyError(f"no row for {hook!r}")

    def best(self) -> LayerRow | None:
        """The row with the best held-out accuracy among rows with selectivity > 0 (None when no row has any)."""
        selective = [r for r in self.rows if not math.isnan(r.selectivity) and r.selectivity > 0]
        return max(selective, key=lambda r: (r.acc, r.selectivity, -r.layer)) if selective else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "method": self.method,
            "position": self.position,
            "classes": list(self.classes),
            "n": self.n,
            "n_groups": self.n_groups,
            "folds": self.folds,
            "C": self.C,
            "seed": self.seed,
            "permutations": self.permutations,
            "fingerprint": None if self.fingerprint is None else self.fingerprint.to_dict(),
            "case_ids": list(self.case_ids),
            "fold_of": list(self.fold_of),
            "rows": [r.to_dict() for r in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerCurve:
        fp = data.get("fingerprint")
        return cls(
            task=data["task"],
            method=data["method"],
            position=data["position"],
            classes=tuple(data["classes"]),
            rows=[LayerRow.from_dict(r) for r in data["rows"]],
            n=int(data.get("n", 0)),
            n_groups=int(data.get("n_groups", 0)),
            folds=int(data.get("folds", 0)),
            C=data.get("C", DEFAULT_C),
            seed=int(data.get("seed", 0)),
            permutations=int(data.get("permutations", 1)),
            fingerprint=None if fp is None else Fingerprint.from_dict(fp),
            case_ids=list(data.get("case_ids", [])),
            fold_of=list(data.get("fold_of", [])),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """The curve as JSON (without the probes; see `probe_weights().save`)."""
        target = Path(path)
        atomic_write_text(target, json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LayerCurve:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def probe_weights(self) -> ProbeWeights:
        return ProbeWeights(dict(self.probes), self.task, self.method, self.position, self.fingerprint)


def _layer_of(hook: str) -> int:
    try:
        return parse_hook_name(hook).layer
    except ValueError:
        return -1


def fit_layer_curve(
    acts: Activations,
    labels: Sequence[str] | None,
    groups: Sequence[str],
    task: str = "clarify_vs_call_tool",
    method: str = "logreg",
    folds: int = 5,
    seed: int = 0,
    *,
    C: float | str = DEFAULT_C,
    hooks: Sequence[str] | None = None,
    permutations: int = 1,
    progress: bool = False,
) -> LayerCurve:
    """Cross-validated probe scores at every hook point of `acts` (or `hooks`), grouped by `groups` (the cases'
    surface templates), with the Hewitt & Liang control and the permutation baseline of `probes.controls`.

    `labels` default to `acts.labels` (expected actions). The task keeps only its rows (clarify / call_tool for
    the binary task). The same folds, control labels and permutations are used at every hook point, so the rows
    differ only in the activations. `permutations`: how many label shufflings the permutation baseline averages
    (0 skips it); `perm_p` = (1 + #{perm acc >= acc}) / (1 + permutations)."""
    from probes.controls import permuted_fold_labels, template_control_labels

    if method not in METHODS:
        raise ValueError(f"unknown probe method {method!r}; expected one of {', '.join(METHODS)}")
    all_labels = [str(v) for v in (acts.labels if labels is None else labels)]
    group_list = [str(g) for g in groups]
    if len(all_labels) != len(acts) or len(group_list) != len(acts):
        raise ValueError(f"{len(acts)} activation rows, {len(all_labels)} labels, {len(group_list)} groups")
    rows, classes = task_rows(all_labels, task)
    y = np.asarray(all_labels)[rows]
    g = np.asarray(group_list)[rows]
    present = sorted(set(y.tolist()))
    if len(present) < 2:
        raise ValueError(f"task {task!r} needs at least two classes among the labels; found {present}")
    splits = grouped_folds(y, g, folds, seed)
    fold_of = np.zeros(len(rows), dtype=np.int64)
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k
    control = template_control_labels(y, g, seed=seed)
    chance = max(float(np.mean(y == c)) for c in present)
    names = list(hooks) if hooks is not None else list(acts.hook_names)
    row_index = torch.as_tensor(rows, dtype=torch.long)

    from tqdm.auto import tqdm

    out_rows: list[LayerRow] = []
    probes: dict[str, LinearProbe] = {}
    for name in tqdm(names, desc=f"probe {task}/{method}", disable=not progress):
        x = _as_matrix(acts[name][row_index])
        kw: dict[str, Any] = {"classes": classes, "method": method, "C": C, "groups": g, "seed": seed}
        real = cross_validate(x, y, splits, **kw)
        ctrl = cross_validate(x, control, splits, **kw)
        perm_accs: list[float] = []
        for p in range(permutations):
            shuffled = permuted_fold_labels(y, splits, seed=seed * 1000 + p + 1)
            perm_accs.append(cross_validate(x, y, splits, train_labels=iter(shuffled), **kw).mean("acc"))
        acc = real.mean("acc")
        perm_acc = float(np.mean(perm_accs)) if perm_accs else math.nan
        perm_p = (1 + sum(a >= acc for a in perm_accs)) / (1 + len(perm_accs)) if perm_accs else math.nan
        out_rows.append(
            LayerRow(
                hook=name,
                layer=_layer_of(name),
                n=len(rows),
                acc=acc,
                acc_std=real.std("acc"),
                balanced_acc=real.mean("balanced_acc"),
                auroc=real.mean("auroc"),
                auroc_std=real.std("auroc"),
                control_acc=ctrl.mean("acc"),
                control_acc_std=ctrl.std("acc"),
                selectivity=acc - ctrl.mean("acc"),
                perm_acc=perm_acc,
                perm_acc_std=float(np.std(perm_accs)) if perm_accs else math.nan,
                perm_p=float(perm_p),
                chance=chance,
            )
        )
        probes[name] = fit_probe(x, y, method, C, classes=classes, groups=g, seed=seed)
    return LayerCurve(
        task=task,
        method=method,
        position=acts.position,
        classes=tuple(c for c in classes if c in present),
        rows=out_rows,
        probes=probes,
        n=len(rows),
        n_groups=len(set(g.tolist())),
        folds=len(splits),
        C=C,
        seed=seed,
        permutations=permutations,
        fingerprint=acts.fingerprint,
        case_ids=[acts.case_ids[i] for i in rows.tolist()],
        fold_of=fold_of.tolist(),
    )


# ------------------------------------------------------------------------------------------------ saved probes


@dataclass
class ProbeWeights:
    """Fitted probes by hook point, saved as `probes.safetensors` + `probes.json` in a folder (no pickle).

    curve.probe_weights().save("runs/x/probes/decision_clarify_vs_call_tool_logreg")
    probe = ProbeWeights.load(path)["blocks.3.hook_resid_post"]"""

    probes: dict[str, LinearProbe]
    task: str
    method: str
    position: str
    fingerprint: Fingerprint | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, hook: str) -> LinearProbe:
        try:
            return self.probes[hook]
        except KeyError:
            raise KeyError(f"no probe for {hook!r}; saved: {', '.join(self.probes)}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        from safetensors.torch import save

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        for hook, probe in self.probes.items():
            tensors.update(probe.tensors(prefix=f"{hook}."))
        sidecar = {
            "format": PROBE_FORMAT,
            "version": 1,
            "task": self.task,
            "method": self.method,
            "position": self.position,
            "fingerprint": None if self.fingerprint is None else self.fingerprint.to_dict(),
            "probes": {hook: probe.header() for hook, probe in self.probes.items()},
            "meta": self.meta,
        }
        atomic_write_bytes(folder / PROBE_TENSORS, save(tensors))
        atomic_write_text(folder / PROBE_SIDECAR, json.dumps(sidecar, indent=2) + "\n")  # last: marks it complete
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbeWeights:
        from safetensors.torch import load_file

        folder = Path(path)
        sidecar = json.loads((folder / PROBE_SIDECAR).read_text(encoding="utf-8"))
        if sidecar.get("format") != PROBE_FORMAT:
            raise ValueError(f"{folder / PROBE_SIDECAR}: not a toolprior probe file")
        tensors = load_file(folder / PROBE_TENSORS)
        fp = sidecar.get("fingerprint")
        return cls(
            probes={h: LinearProbe.from_parts(head, tensors, prefix=f"{h}.") for h, head in sidecar["probes"].items()},
            task=sidecar["task"],
            method=sidecar["method"],
            position=sidecar["position"],
            fingerprint=None if fp is None else Fingerprint.from_dict(fp),
            meta=dict(sidecar.get("meta", {})),
        )


def stratified_folds(
    labels: Sequence[str] | np.ndarray, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ungrouped, class-stratified folds: templates may sit on both sides. Only for measuring what a probe can
    memorise (the Hewitt & Liang control's original quantity, see `probes.controls`); never for reported scores."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray([str(v) for v in labels])
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y)]
