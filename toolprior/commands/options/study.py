"""`toolprior study CONFIG`: the whole study, cached and resumable; `toolprior demo` runs the default config."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    study = subparsers.add_parser("study", help="run a whole study from a YAML config into runs/<name>/ (resumable)")
    study.add_argument("config", type=Path, help="YAML file filling experiments.study_config.StudyConfig")
    study.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. eval.batch_size=64"
    )
    study.add_argument("--name", default=None, help="run name (folder under out_dir)")
    study.add_argument(
        "--report-only",
        action="store_true",
        help="run no stage: write report.md / report.json from the stages finished so far (an interim report)",
    )
    study.set_defaults(run=("study", "study"))
