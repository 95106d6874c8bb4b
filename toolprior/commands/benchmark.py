"""`toolprior data generate`: the synthetic benchmark's five splits (training.benchmark)."""

from __future__ import annotations

import argparse

from toolprior.training.benchmark import BenchmarkConfig, parse_mix, write_benchmark


def generate(args: argparse.Namespace) -> int:
    config = BenchmarkConfig.from_yaml(args.config) if args.config else BenchmarkConfig()
    if args.mix:
        config = config.replace(train_mix=parse_mix(args.mix))
    summary = write_benchmark(args.out, seed=args.seed, config=config)
    print(summary.describe())
    return 0
