"""`toolprior report`: the report.json of several run folders side by side."""

from __future__ import annotations

import argparse
import json

from toolprior.actions import ACTION_NAMES
from toolprior.errors import InputError, Problem


def report(args: argparse.Namespace) -> int:
    rows = []
    for run in args.runs:
        path = run / "report.json" if run.is_dir() else run
        if not path.is_file():
            raise InputError(Problem(str(path), None, None, "no report.json here"))
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise InputError(Problem(str(path), err.lineno, None, f"invalid JSON: {err.msg}")) from None
        for method, m in report.get("methods", {}).items():
            rows.append((f"{run.name}/{method}", m))
    header = ["run/method", "overall", "macro", *ACTION_NAMES]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name, m in rows:
        cells = [f"{m['per_action'][a]['acc']:.2f}" if a in m.get("per_action", {}) else "–" for a in ACTION_NAMES]
        print(f"| {name} | {m['overall']:.2f} | {m['macro_action']:.2f} | " + " | ".join(cells) + " |")
    return 0
