"""`toolprior ablate CONFIG`: arms x seeds of the SFT recipe, scored on the same cases (experiments/ablate.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    ablate = subparsers.add_parser(
        "ablate", help="run an ablation grid over seeds from a YAML config; mean ± sd table and plots (resumable)"
    )
    ablate.add_argument("config", type=Path, help="YAML file filling experiments.ablate_config.AblationConfig")
    ablate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. seeds=[0]")
    ablate.add_argument("--name", default=None, help="ablation name (folder under out_dir)")
    ablate.set_defaults(func=_ablate)


def _ablate(args: argparse.Namespace) -> int:
    from experiments.ablate import run_ablation
    from experiments.ablate_config import AblationConfig
    from toolprior.commands.train import _quiet_libraries
    from toolprior.config import load_config

    _quiet_libraries()
    overrides = list(args.set) + ([f"name={args.name}"] if args.name else [])
    config = load_config(AblationConfig, args.config, overrides=overrides, check_files=True)
    results = run_ablation(config)
    run = Path(config.out_dir) / config.name
    print(f"\nwrote {run / 'results.json'}, {run / 'table.md'} and {run / 'plots' / 'arms.png'}\n")
    print((run / "table.md").read_text())
    return 0 if results["arms"] else 2
