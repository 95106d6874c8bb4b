"""`toolprior eval` (score a model on cases) and `toolprior report` (compare runs side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolprior.commands.options.common import int_list
from toolprior.steering_names import OPERATORS, POSITIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="score a model on case files: verdicts, report.json/md, plots")
    ev.add_argument("--model", required=True, help="local model folder, or 'organism' for the embedded base")
    ev.add_argument("--adapter", type=Path, default=None, help="PEFT adapter folder applied on top")
    ev.add_argument("--quantize", choices=["none", "nf4"], default="none")
    ev.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ev.add_argument("--cases", required=True, type=Path, nargs="+", help="case JSONL file(s)")
    ev.add_argument("--out", required=True, type=Path, help="output folder (methods merge into its report.json)")
    ev.add_argument(
        "--method", default=None, help="name of this method in the report (default sft; steering with --steer)"
    )
    ev.add_argument("--max-turns", type=int, default=1, help="1 = score the decision only; up to 16")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--max-new-tokens", type=int, default=160)
    ev.add_argument("--limit", type=int, default=None, help="only the first N cases (smoke runs)")
    ev.add_argument("--trust-remote-code", action="store_true")
    ev.add_argument(
        "--faithfulness",
        action="store_true",
        help="also run the think-block interventions (truncate, filler, flipped conclusion) and report how often "
        "the action changes (one extra short generation per case and intervention)",
    )
    ev.add_argument(
        "--no-think-judge",
        action="store_true",
        help="skip classifying what each think block argues for (think/action mismatch is then not reported)",
    )
    steer = ev.add_argument_group("steering (toolprior steer compute / sweep)")
    steer.add_argument("--steer", type=Path, default=None, metavar="VECTOR", help="steer with this vector file")
    steer.add_argument("--alpha", type=float, default=1.0, help="steering strength (default 1.0)")
    steer.add_argument("--layers", type=int_list, default=None, help="layers of the vector to apply (default all)")
    steer.add_argument(
        "--steer-positions",
        choices=POSITIONS,
        default="all",
        help="which positions to steer (default all)",
    )
    steer.add_argument("--steer-operator", choices=OPERATORS, default="add")
    steer.add_argument("--chosen-on", default=None, help="split alpha/layers were chosen on (for the report)")
    ev.set_defaults(run=("evaluate", "evaluate"))

    rep = subparsers.add_parser("report", help="compare the report.json of several run folders side by side")
    rep.add_argument("runs", nargs="+", type=Path)
    rep.set_defaults(run=("report", "report"))
