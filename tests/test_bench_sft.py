"""The SFT step ratio of `make bench` (ours against plain TRL + PEFT) runs end to end on the SmolLM2 organism's recipe:
one step a side, so it only checks that both sides train and the ratio is the quotient of their times."""

from __future__ import annotations

import pytest

from toolprior.experiments.bench_sft import sft_step_ratio

pytestmark = pytest.mark.slow


def test_sft_step_ratio_trains_both_sides(smollm2_folder):
    row = sft_step_ratio("none", steps=1, repeats=1)
    assert row["ours_s_per_step"] > 0 and row["plain_s_per_step"] > 0
    assert row["ratio"] == pytest.approx(row["ours_s_per_step"] / row["plain_s_per_step"], rel=1e-2)
    assert row["steps"] == 1 and row["quantize"] == "none"
