"""The synthetic enterprise benchmark: five actions, fourteen categories, five splits.

>>> from training.benchmark import BenchmarkConfig, write_benchmark
>>> summary = write_benchmark("data/", seed=7, config=BenchmarkConfig())
>>> print(summary.describe())
"""

from __future__ import annotations

from toolprior.training.benchmark.config import DEFAULT_MIX, BenchmarkConfig, parse_mix
from toolprior.training.benchmark.writer import BenchmarkSummary, generate, write_benchmark

__all__ = ["DEFAULT_MIX", "BenchmarkConfig", "BenchmarkSummary", "generate", "parse_mix", "write_benchmark"]
