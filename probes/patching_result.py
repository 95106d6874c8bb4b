"""The result of activation patching: patched metrics per pair on a layer x position (or layer x head) map.

Normalised score = (mean patched - mean corrupted) / (mean clean - mean corrupted), means over pairs (a per-pair
ratio explodes on pairs whose twins barely differ): denoising 0 = no effect, 1 = fully restored; noising 1 = no
effect, 0 = fully corrupted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

DIRECTIONS: tuple[str, ...] = ("denoise", "noise")


def normalised(patched: float, clean: float, corrupted: float) -> float:
    """(patched - corrupted) / (clean - corrupted); NaN when the twins' metrics do not differ."""
    denominator = clean - corrupted
    if abs(denominator) < 1e-6:
        return math.nan
    return (patched - corrupted) / denominator


@dataclass
class PatchingResult:
    """Patched metrics per pair. `maps[direction]` is [P, L, X] (X = positions or heads), the metric of the target
    run (denoise: corrupted; noise: clean) with that one activation patched; NaN where nothing could be patched.

    `kind`: "resid_post" (X = offsets from the end, 0 = last token) or "z" (X = heads, at offset 0).
    `method`: "exact" or "attribution" (then `maps` hold the ESTIMATED patched metric = target + estimated
    effect)."""

    kind: str
    method: str
    position: str
    layers: list[int]
    columns: list[int]
    pair_ids: list[str]
    clean: torch.Tensor
    corrupted: torch.Tensor
    maps: dict[str, torch.Tensor]
    aligned: list[int] = field(default_factory=list)

    def effect(self, direction: str) -> torch.Tensor:
        """[L, X] mean over pairs of patched - target metric (metric units; NaN cells skipped)."""
        target = self.corrupted if direction == "denoise" else self.clean
        diff = self.maps[direction] - target[:, None, None]
        return _nanmean(diff, dim=0)

    def normalised(self, direction: str) -> torch.Tensor:
        """[L, X] (mean patched - mean corrupted) / (mean clean - mean corrupted), means over pairs (see the module
        docstring): denoise 0 -> 1 = restored; noise 1 -> 0 = destroyed."""
        patched = _nanmean(self.maps[direction], dim=0)
        clean, corrupted = float(self.clean.mean()), float(self.corrupted.mean())
        denominator = clean - corrupted
        if abs(denominator) < 1e-6:
            return torch.full_like(patched, math.nan)
        return (patched - corrupted) / denominator

    def to_dict(self) -> dict[str, Any]:
        def grid(t: torch.Tensor) -> list[list[float | None]]:
            return [[None if math.isnan(x) else round(float(x), 6) for x in row] for row in t.tolist()]

        return {
            "kind": self.kind,
            "method": self.method,
            "position": self.position,
            "metric": "logit(<clarify>) - logit(<tool_call>) at the last token",
            "layers": self.layers,
            "columns": self.columns,
            "columns_are": "offset from the end (0 = last token)" if self.kind == "resid_post" else "head",
            "pairs": self.pair_ids,
            "aligned": self.aligned,
            "clean_mean": float(self.clean.mean()),
            "corrupted_mean": float(self.corrupted.mean()),
            "normalised": {d: grid(self.normalised(d)) for d in self.maps},
            "effect": {d: grid(self.effect(d)) for d in self.maps},
        }


def _nanmean(t: torch.Tensor, dim: int) -> torch.Tensor:
    mask = ~torch.isnan(t)
    total = torch.where(mask, t, torch.zeros((), dtype=t.dtype)).sum(dim=dim)
    count = mask.sum(dim=dim)
    out = total / count.clamp(min=1)
    return torch.where(count > 0, out, torch.full_like(out, math.nan))
