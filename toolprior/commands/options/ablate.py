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
    ablate.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write results.json / table.md from the runs finished so far (a partial table)",
    )
    ablate.set_defaults(run=("ablate", "ablate"))
