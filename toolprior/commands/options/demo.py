"""`toolprior demo` (what `make demo` runs): the default study (experiments/configs/demo.yaml) on the embedded
organism into one folder, in under 10 minutes on 2 CPU cores: benchmark, QLoRA SFT, eval, probe, steering chosen
on mine, SimPO, and every method scored on the same held-out ids (report.json, report.md, plots, verdicts).

Every stage is cached under <out>/stages and SFT resumes from its last checkpoint, so an interrupted demo picks up
where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo", help="the default study on the embedded organism into --out (under 10 minutes; resumable)"
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a demo.yaml setting")
    demo.set_defaults(run=("study", "demo"))
