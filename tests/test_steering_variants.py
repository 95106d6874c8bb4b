"""The study's steering variants: one scale for every variant (`steering.variant_scale`)."""

from __future__ import annotations

import pytest
import torch

from toolprior.experiments.steering_variants import rescaled
from toolprior.steering.vector import SteeringVector


def test_rescaled_keeps_each_direction_sets_each_length_and_leaves_a_vector_at_scale_as_it_is():
    g = torch.Generator().manual_seed(0)
    short = SteeringVector({3: torch.randn(8, generator=g) * 0.01, 5: torch.randn(8, generator=g)}, meta={"n": 4})
    norms = {3: 12.0, 5: 99.5}
    scaled = rescaled(short, norms)
    assert scaled.norms() == pytest.approx(norms, rel=1e-6)
    for layer in (3, 5):
        cos = torch.nn.functional.cosine_similarity(scaled[layer], short[layer], dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-6)
    assert scaled.meta["n"] == 4 and "decision point" in scaled.meta["scaled_to"]
    assert rescaled(scaled, norms) is scaled  # already at scale: untouched, so its saved sweeps stay reusable
