"""Control tasks for probes: what a probe scores when the labels carry no information about the activations.

Two controls, both run with the SAME probe family and the SAME grouped folds as the real task
(`probes.layer_curve`):

1. **Hewitt & Liang control task** (`template_control_labels`): every surface template gets one random label, drawn
   so that the control labels keep the real labels' class balance; a row's control label is its template's.
   Selectivity = accuracy - control accuracy.

   Why this control, given that the folds hold out whole templates: Hewitt & Liang assign each word TYPE a random
   label, so a probe can score on the control task only by memorising type identity; their selectivity subtracts
   that memorisation capacity. Our "types" are templates. A per-template random label is, by construction, a
   function of template identity alone, so the control accuracy measures what the probe gains from recognising
   templates. Under grouped CV the test templates are never seen in training, so template identity predicts
   nothing there and the control should sit near chance; if it does NOT (control well above chance), the probe is
   exploiting something that leaks across templates (e.g. a label-correlated surface feature shared by related
   templates, or unlucky fold composition), and selectivity subtracts exactly that. So under grouped CV it
   is a check that the grouping works, plus a guard against fold artefacts; run the same labels with ungrouped
   folds (`probes.cross_validation.cross_validate` with `probes.folds.stratified_folds`) to see the probe's raw memorisation capacity,
   which is Hewitt & Liang's original quantity.

2. **Permutation baseline** (`permuted_fold_labels`): the labels are shuffled WITHIN each training fold (the
   held-out fold keeps its real labels). The probe learns from labels unrelated to the activations and is scored on
   the real held-out labels: the accuracy a probe of this size reaches by chance with these class frequencies and
   this many rows. Unlike the template control, this is informative under grouped CV: the real accuracy must beat
   it (a permutation test; `LayerRow.perm_p`).

The third baseline, the same curve on the base model's activations (before the agent's fine-tuning, or a random
initialisation), needs a second capture and is run by `probes.experiment_run` (`probes.baseline`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def template_control_labels(
    labels: Sequence[str] | np.ndarray, groups: Sequence[str] | np.ndarray, seed: int = 0
) -> np.ndarray:
    """One random label per template (`groups`), with the real labels' class balance; per row.

    Templates are visited in a random order and each takes the class furthest below its target row count (the
    real count of that class), ties broken at random; so the control labels' class counts match the real ones as
    closely as whole templates allow, and which template gets which class is random."""
    y = np.asarray([str(v) for v in labels])
    g = np.asarray([str(v) for v in groups])
    if y.shape != g.shape:
        raise ValueError(f"{y.shape[0]} labels but {g.shape[0]} groups")
    rng = np.random.default_rng(seed)
    classes = sorted(set(y.tolist()))
    target = {c: int(np.sum(y == c)) for c in classes}
    assigned = dict.fromkeys(classes, 0)
    templates = sorted(set(g.tolist()))
    sizes = {t: int(np.sum(g == t)) for t in templates}
    label_of: dict[str, str] = {}
    for t in rng.permutation(np.asarray(templates, dtype=object)).tolist():
        deficit = np.asarray([target[c] - assigned[c] for c in classes], dtype=np.float64)
        deficit += rng.random(len(classes)) * 1e-3  # random tie-break
        choice = classes[int(np.argmax(deficit))]
        label_of[t] = choice
        assigned[choice] += sizes[t]
    return np.asarray([label_of[t] for t in g.tolist()])


def permuted_fold_labels(
    labels: Sequence[str] | np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]], seed: int = 0
) -> list[np.ndarray]:
    """Per fold, the labels with the TRAINING rows' labels shuffled among themselves (test rows untouched)."""
    y = np.asarray([str(v) for v in labels])
    rng = np.random.default_rng(seed)
    out = []
    for train, _ in splits:
        shuffled = y.copy()
        shuffled[train] = y[train][rng.permutation(len(train))]
        out.append(shuffled)
    return out
