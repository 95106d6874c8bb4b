"""Linear probes per hook point, cross-validated by SURFACE TEMPLATE, and the layer curve they make.

    curve = fit_layer_curve(acts, acts.labels, [c.template for c in cases], task="clarify_vs_call_tool")
    curve.best()                      # the row with the best held-out accuracy among those with selectivity > 0
    probe = curve.probes["blocks.3.hook_resid_post"]
    probe.predict_proba(x)[:, 1]      # P(clarify), x in the ORIGINAL activation space

Tasks and folds: `probes.folds`; probe methods: `probes.fit`. Reported per row: accuracy (mean over grouped folds,
with its std across folds), balanced accuracy, AUROC, the Hewitt & Liang control accuracy and selectivity = acc -
control_acc, and the permutation baseline (see `probes.controls`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from toolprior.atomic import atomic_write_text
from toolprior.fingerprint import Fingerprint
from toolprior.probes.activations import Activations
from toolprior.probes.controls import permuted_fold_labels, template_control_labels
from toolprior.probes.cross_validation import cross_validate
from toolprior.probes.fit import DEFAULT_C, METHODS, as_matrix, fit_probe
from toolprior.probes.folds import grouped_folds, task_rows
from toolprior.probes.hook_points import parse_hook_name
from toolprior.probes.linear_probe import LinearProbe, ProbeWeights


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
        values: dict[str, Any] = {k: (math.nan if data.get(k) is None else data[k]) for k in cls.__dataclass_fields__}
        return cls(**values)


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

    out_rows: list[LayerRow] = []
    probes: dict[str, LinearProbe] = {}
    for name in tqdm(names, desc=f"probe {task}/{method}", disable=not progress):
        x = as_matrix(acts[name][row_index])
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
