"""`toolprior pairs`: SimPO preference pairs from the agent's failures on the `mine` split (training.pairs)."""

from __future__ import annotations

import argparse

from toolprior.case_io import read_case_files
from toolprior.training.pair_mining import mine_pairs
from toolprior.training.pairs import DEFAULT_ALLOWED_SPLITS, pair_stats, write_pairs
from toolprior.verdict import read_verdicts


def pairs(args: argparse.Namespace) -> int:
    cases = read_case_files(args.cases)
    eval_cases = read_case_files(args.eval_cases) if args.eval_cases else []
    verdicts = read_verdicts(args.verdicts)
    mined = mine_pairs(
        cases,
        verdicts,
        eval_cases=eval_cases,
        allowed_splits=tuple(args.allow_split or DEFAULT_ALLOWED_SPLITS),
        source=args.verdicts,
    )
    n = write_pairs(args.out, mined)
    print(pair_stats(mined), end="")
    print(f"wrote {n} pairs -> {args.out}")
    return 0
