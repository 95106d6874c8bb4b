"""How much paired differences agree on one direction (`cosine_consistency`): a vector whose twin differences
point every which way is not one direction. Reported beside every paired vector (`compute_vector`'s meta) and by
`toolprior steer compute`.

    cos = cosine_consistency(paired_differences(acts, layer, groups))   # steering.compute.paired_differences
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class CosineConsistency:
    """How much the per-pair differences agree: `mean_pairwise` is the mean cosine over all pairs of pairs
    (i != j); `with_mean[i]` is pair i's cosine with the mean difference."""

    mean_pairwise: float
    with_mean: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"mean_pairwise": self.mean_pairwise, "with_mean": self.with_mean, "n": len(self.with_mean)}


def cosine_consistency(differences: torch.Tensor) -> CosineConsistency:
    """Cosine consistency of paired differences [P, d] (P >= 2)."""
    d = differences.to(torch.float64)
    if d.dim() != 2 or d.shape[0] < 2:
        raise ValueError(f"need at least two paired differences [P, d], got shape {tuple(d.shape)}")
    unit = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    p = d.shape[0]
    mean_pairwise = float((cos.sum() - cos.diagonal().sum()) / (p * (p - 1)))
    mean = d.mean(dim=0)
    with_mean = (unit @ (mean / mean.norm().clamp_min(1e-12))).tolist()
    return CosineConsistency(mean_pairwise, [float(x) for x in with_mean])
