"""`toolprior demo`: the study on the embedded default. Grows with the project; today it builds the benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the default study on the embedded organism into --out")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from toolprior.atomic import atomic_write_text
    from toolprior.case_io import read_cases
    from toolprior.case_stats import format_stats
    from training.benchmark import BenchmarkConfig, write_benchmark

    data_dir = args.out / "data"
    summary = write_benchmark(data_dir, seed=args.seed, config=BenchmarkConfig())
    print(summary.describe())
    cases = [c for split in ("train", "eval") for c in read_cases(data_dir / f"{split}.jsonl")]
    stats = format_stats(cases)
    atomic_write_text(args.out / "data_stats.txt", stats)
    print(stats)
    return 0
