"""The record every capture produces: activations per hook point, one row per case, with the case ids and labels.

    acts["blocks.3.hook_resid_post"]        # [N, d_model]
    acts.layer(3)                           # the same
    acts.subset([0, 2])                     # rows 0 and 2 only

Built by `probes.capture.capture` (in memory) and `probes.store.load_activations` (from disk, optionally lazy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from toolprior.fingerprint import Fingerprint


@dataclass
class Activations:
    """Captured activations: `tensors[hook_name]` is [N, d] ([N, n_heads, head_dim] for hook_z), row i belonging to
    `case_ids[i]` with label `labels[i]`, all read at `position` on the model `fingerprint` names.

    `tensors` may be lazy (a store read one hook at a time, see `probes.store.load_activations`)."""

    tensors: Mapping[str, torch.Tensor]
    case_ids: list[str]
    labels: list[str]
    position: str
    fingerprint: Fingerprint
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.case_ids) != len(self.labels):
            raise ValueError(f"{len(self.case_ids)} case ids but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, hook: str) -> torch.Tensor:
        try:
            return self.tensors[hook]
        except KeyError:
            raise KeyError(f"no activations for {hook!r}; captured: {', '.join(self.hook_names)}") from None

    @property
    def hook_names(self) -> list[str]:
        return list(self.tensors)

    def layer(self, i: int) -> torch.Tensor:
        """The residual stream after block i: `self["blocks.{i}.hook_resid_post"]`."""
        return self[f"blocks.{i}.hook_resid_post"]

    def subset(self, rows: Sequence[int] | torch.Tensor) -> Activations:
        """The same activations for some rows only (in the given order)."""
        index = torch.as_tensor(rows, dtype=torch.long)
        picked = index.tolist()
        return dataclasses.replace(
            self,
            tensors={name: self[name][index] for name in self.hook_names},
            case_ids=[self.case_ids[i] for i in picked],
            labels=[self.labels[i] for i in picked],
        )
