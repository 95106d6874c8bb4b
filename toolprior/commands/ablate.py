"""`toolprior ablate CONFIG`: arms x seeds of the SFT recipe, scored on the same cases (experiments/ablate.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolprior.commands.quiet import quiet_libraries
from toolprior.config import load_config
from toolprior.experiments.ablate_config import AblationConfig


def ablate(args: argparse.Namespace) -> int:
    overrides = list(args.set) + ([f"name={args.name}"] if args.name else [])
    config = load_config(AblationConfig, args.config, overrides=overrides, check_files=True)
    quiet_libraries()  # after the config is accepted: quieting transformers imports it (and torch)
    # lazy: the arms load torch and the trainers; a bad config is refused first
    from toolprior.experiments.ablate import run_ablation

    results = run_ablation(config, report_only=args.report_only)
    run = Path(config.out_dir) / config.name
    print(f"\nwrote {run / 'results.json'}, {run / 'table.md'} and {run / 'plots' / 'arms.png'}\n")
    print((run / "table.md").read_text())
    return 0 if results["arms"] else 2
