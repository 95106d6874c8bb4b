"""`toolprior pairs`: SimPO preference pairs from the agent's failures on the `mine` split (training.pairs)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    pairs = subparsers.add_parser(
        "pairs",
        help="mine preference pairs from failed verdicts on the mine split",
        description=(
            "Turns each failed verdict into a preference pair: rejected = the agent's output verbatim, chosen = the "
            "corrected turn (the agent's own think when it argued for the right action, plus the gold action; the "
            "gold turn otherwise). Refuses (exit 2) any pair whose case or twin is held out (split eval / "
            "eval_novel, or listed in --eval-cases), and failures from splits other than --allow-split."
        ),
    )
    pairs.add_argument("--verdicts", required=True, help="verdicts JSONL of the agent on the mine split")
    pairs.add_argument(
        "--cases",
        required=True,
        action="append",
        metavar="FILE",
        help="case JSONL holding the verdicts' cases (repeatable)",
    )
    pairs.add_argument("--out", required=True, help="pairs JSONL to write")
    pairs.add_argument(
        "--eval-cases",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="held-out case files: no pair may be on one of their cases or on a twin of one",
    )
    pairs.add_argument(
        "--allow-split",
        action="append",
        default=None,
        metavar="SPLIT",
        help="split pairs may come from (repeatable; default mine; eval and eval_novel are never allowed)",
    )
    pairs.set_defaults(run=("pairs", "pairs"))
