"""`toolprior eval` (score a model on cases) and `toolprior report` (compare runs side by side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


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
    steer.add_argument("--layers", type=_layer_list, default=None, help="layers of the vector to apply (default all)")
    steer.add_argument(
        "--steer-positions",
        choices=["all", "prompt", "generated", "from_decision"],
        default="all",
        help="which positions to steer (default all)",
    )
    steer.add_argument("--steer-operator", choices=["add", "ablate", "ablate_then_add"], default="add")
    steer.add_argument("--chosen-on", default=None, help="split alpha/layers were chosen on (for the report)")
    ev.set_defaults(func=_eval)

    rep = subparsers.add_parser("report", help="compare the report.json of several run folders side by side")
    rep.add_argument("runs", nargs="+", type=Path)
    rep.set_defaults(func=_report)


def _layer_list(text: str) -> list[int]:
    from toolprior.commands.steer import int_list

    return int_list(text)


def _eval(args: argparse.Namespace) -> int:
    import torch

    from evals.harness import HarnessConfig, distributed_world, evaluate
    from evals.report import write_eval_report
    from toolprior.case_io import read_case_files
    from toolprior.modeling import load_model, load_tokenizer

    cases = read_case_files(args.cases)
    if args.limit is not None:
        cases = cases[: args.limit]
    world = distributed_world()  # launched as several processes: each scores a shard, rank 0 writes
    device = None
    if world is not None and torch.cuda.is_available():
        from accelerate import PartialState

        device = f"cuda:{PartialState().local_process_index}"
    tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
    model = load_model(
        args.model,
        quantize=args.quantize,
        adapter=args.adapter,
        dtype=args.dtype,
        device=device,
        trust_remote_code=args.trust_remote_code,
    )
    config = HarnessConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, max_turns=args.max_turns)
    steer, extras = None, {}
    method = args.method or ("steering" if args.steer is not None else "sft")
    if args.steer is not None:
        from toolprior.commands.steer import steering_from_args

        steer, steering_extras = steering_from_args(args, model, tokenizer)
        extras = {method: steering_extras}
    verdicts = evaluate(model, tokenizer, cases, config=config, steer=steer, desc=method)
    if world is not None and world[0] != 0:
        return 0  # every rank holds all gathered verdicts; rank 0 alone judges, scores and writes
    if not args.no_think_judge:
        from evals.forensics import annotate_think

        verdicts = annotate_think(verdicts, cases=cases)  # the rule judge; feeds think_action_mismatch
    extras.setdefault(method, {})["forensics"] = _forensics(args, model, tokenizer, cases, verdicts)
    from evals.external_metrics import external_metrics

    external = external_metrics(cases, verdicts)  # When2Call / BFCL numbers when imported cases are among `cases`
    if external:
        extras[method]["external"] = external
    report = write_eval_report(args.out, cases, {method: verdicts}, extras=extras)
    m = report["methods"][method]
    print(f"{method}: overall {m['overall']:.3f}, macro over actions {m['macro_action']:.3f} on {len(cases)} cases")
    for action, block in m["per_action"].items():
        print(
            f"  {action:16s} n={block['n']:4d} acc={block['acc']:.3f} ci95={block['ci95']} top_wrong={block['top_wrong']}"
        )
    print(f"wrote {args.out / 'report.json'}")
    return 0


def _forensics(args: argparse.Namespace, model: Any, tokenizer: Any, cases: list, verdicts: list) -> dict[str, Any]:
    """Invented argument values, the clearest think/action mismatches, and (with --faithfulness) the think-block
    interventions, for report.json's `forensics` block of this method."""
    from evals.forensics import hallucination_rate, mismatch_examples

    out: dict[str, Any] = {"hallucination": hallucination_rate(cases, verdicts)}
    if not args.no_think_judge:
        out["mismatch_examples"] = mismatch_examples(verdicts, k=5)
    if args.faithfulness:
        from evals.faithfulness import faithfulness

        out["faithfulness"] = faithfulness(model, tokenizer, cases, verdicts, batch_size=args.batch_size)
    return out


def _report(args: argparse.Namespace) -> int:
    from toolprior.actions import ACTION_NAMES
    from toolprior.errors import InputError, Problem

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
