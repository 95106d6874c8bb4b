"""`toolprior demo` (what `make demo` runs): the benchmark, QLoRA SFT of the embedded organism, and its evaluation
on the held-out `eval` split, into one folder. Grows into the full study (probes, steering, SimPO) as those land.

Each step is skipped when its result exists, and SFT resumes from its last checkpoint, so an interrupted demo
picks up where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SFT_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "sft_organism.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="benchmark, SFT of the embedded organism and its eval report into --out (about 4 minutes)"
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--seed", type=int, default=7, help="benchmark seed")
    demo.add_argument("--train-seed", type=int, default=0, help="SFT seed")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from toolprior.atomic import atomic_write_text
    from toolprior.case_io import read_cases
    from toolprior.case_stats import format_stats
    from toolprior.cli import main as cli
    from training.benchmark import BenchmarkConfig, write_benchmark

    out: Path = args.out
    data_dir = out / "data"
    if not (data_dir / "eval.jsonl").exists():
        summary = write_benchmark(data_dir, seed=args.seed, config=BenchmarkConfig())
        print(summary.describe())
        cases = [c for split in ("train", "eval") for c in read_cases(data_dir / f"{split}.jsonl")]
        atomic_write_text(out / "data_stats.txt", format_stats(cases))
    sft_dir = out / "sft"
    if not (sft_dir / "adapter" / "adapter_config.json").exists():
        sft_args = ["train", "sft", str(SFT_CONFIG), "--output-dir", str(sft_dir), "--set", f"data.dir={data_dir}"]
        code = cli([*sft_args, "--set", f"training.seed={args.train_seed}"])
        if code:
            return code
    if not (out / "report.json").exists():
        model_args = ["--model", "organism", "--adapter", str(sft_dir / "adapter"), "--quantize", "nf4"]
        eval_args = ["--cases", str(data_dir / "eval.jsonl"), "--out", str(out), "--max-turns", "1", "--faithfulness"]
        code = cli(["eval", *model_args, *eval_args])
        if code:
            return code
    print(f"demo: {out / 'report.md'} (split eval); verdicts in {out / 'verdicts'}, plots in {out / 'plots'}")
    return 0
