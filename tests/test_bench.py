"""make bench's timing helper (ratios come from runs taken in alternation) and its scaling table and plot."""

from __future__ import annotations

import torch

from toolprior.case_io import read_cases
from toolprior.experiments.bench_scaling import capture_cost, plot_scaling, sweep_scaling
from toolprior.experiments.bench_timing import paired_times
from toolprior.steering.vector import SteeringVector
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark


def test_paired_times_alternates_with_the_order_flipped_every_pair_and_returns_each_sides_median():
    calls: list[str] = []
    a_s, b_s = paired_times(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # one warm-up each, then a b, b a, a b
    assert a_s >= 0.0 and b_s >= 0.0


def test_scaling_rows_and_plot(tmp_path, tiny_model, tiny_tokenizer):

    write_benchmark(tmp_path / "data", seed=3, config=BenchmarkConfig().replace(train_size=10, val_size=4, mine_size=4))
    cases = read_cases(tmp_path / "data" / "eval.jsonl")[:4]
    vector = SteeringVector({1: torch.randn(tiny_model.config.hidden_size)})
    sweep = sweep_scaling(tiny_model, tiny_tokenizer, cases, vector, counts=(1, 2), max_new_tokens=4)
    assert [r["alphas"] for r in sweep] == [1, 2] and sweep[0]["ratio_to_one"] == 1.0
    assert all(r["seconds"] > 0 for r in sweep)
    capture = [capture_cost(40)]
    row = capture[0]
    assert row["cases"] == 40 and row["seconds"] > 0 and row["peak_rss_mb"] >= row["rss_before_mb"]
    assert row["written_mb"] > 0  # 40 cases x 6 blocks x width 128 in float16 went to disk
    path = plot_scaling(capture, sweep, tmp_path / "scaling.png", "test machine")
    assert path.stat().st_size > 1000
