"""`toolprior data validate | stats | import`: case files (`data generate` is toolprior/commands/benchmark.py, which
needs the training package)."""

from __future__ import annotations

import argparse
import sys

from toolprior.case_io import read_case_files, read_cases, write_cases
from toolprior.case_stats import format_stats
from toolprior.importers import import_file


def validate(args: argparse.Namespace) -> int:
    total = len(read_case_files(args.files))  # raises InputError with every problem of every file
    print(f"ok: {total} cases in {len(args.files)} file(s)")
    return 0


def stats(args: argparse.Namespace) -> int:
    cases = [case for path in args.files for case in read_cases(path)]
    sys.stdout.write(format_stats(cases))
    return 0


def import_cases(args: argparse.Namespace) -> int:
    options = {"answers": args.answers} if args.answers is not None else {}
    cases = import_file(args.source, args.src, split=args.split, **options)
    write_cases(args.out, cases)
    print(f"imported {len(cases)} cases from {args.src} into {args.out}")
    return 0
