"""`toolprior data generate | validate | stats | import`: the benchmark and its data."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolprior.commands.options.common import print_help_and_exit


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="generate, validate, summarise and import case files")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    gen = sub.add_parser("generate", help="write the synthetic benchmark's five splits as JSONL")
    gen.add_argument("--out", required=True, type=Path, help="output folder (train/val/mine/eval/eval_novel.jsonl)")
    gen.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives byte-identical files")
    gen.add_argument("--config", type=Path, default=None, help="YAML file of BenchmarkConfig fields")
    gen.add_argument(
        "--mix",
        default=None,
        help="train action mix as call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10",
    )
    gen.set_defaults(run=("benchmark", "generate"))

    val = sub.add_parser("validate", help="check case files; exit 2 with file:line: field: message per problem")
    val.add_argument("files", nargs="+", type=Path)
    val.set_defaults(run=("data", "validate"))

    stats = sub.add_parser("stats", help="action x category tables and surface-diversity figures")
    stats.add_argument("files", nargs="+", type=Path)
    stats.set_defaults(run=("data", "stats"))

    imp = sub.add_parser("import", help="turn an external benchmark file into cases")
    imp.add_argument("source", choices=["when2call", "bfcl"], help="which benchmark the file comes from")
    imp.add_argument("src", type=Path, help="the benchmark's own file")
    imp.add_argument("--out", required=True, type=Path, help="output cases JSONL")
    imp.add_argument("--split", default="eval", help="split written on every imported case (default eval)")
    imp.add_argument(
        "--answers",
        type=Path,
        default=None,
        help="bfcl only: its possible_answer file (default: possible_answer/ beside SRC, matched by name or ids)",
    )
    imp.set_defaults(run=("data", "import_cases"))

    print_help_and_exit(data, 0)
