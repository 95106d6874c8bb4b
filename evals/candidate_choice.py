"""The record of one multiple-choice decision scored by log-probability (`evals.when2call_logprob`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CandidateChoice:
    """Which candidate a model found most likely for one case: `label` (the benchmark's own name for it),
    `predicted` (the action it maps to, the name `evals.external_metrics` scores), the mean log-probability per
    token of every candidate, and the text the candidates followed (`prefix`: "" or the model's own think)."""

    case_id: str
    label: str
    predicted: str
    scores: dict[str, float] = field(default_factory=dict)
    prefix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "label": self.label,
            "predicted": self.predicted,
            "scores": {k: round(v, 5) for k, v in self.scores.items()},
            "prefix": self.prefix,
        }
