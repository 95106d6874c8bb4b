"""A fitted linear probe, and fitted probes by hook point saved as safetensors + a JSON sidecar (never pickled).

    probe.predict_proba(x)[:, 1]      # P(clarify), x in the ORIGINAL activation space
    probe.direction                   # unit vector toward clarify, in the original activation space
    ProbeWeights.load(path)["blocks.3.hook_resid_post"]

Probes are fitted by `probes.fit.fit_probe` and, per hook point, by `probes.layer_curve.fit_layer_curve`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from toolprior.atomic import atomic_write_bytes, atomic_write_text
from toolprior.fingerprint import Fingerprint

PROBE_FORMAT = "toolprior.probes"
PROBE_SIDECAR = "probes.json"
PROBE_TENSORS = "probes.safetensors"


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
