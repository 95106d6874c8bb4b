"""`toolprior eval`: score a model on cases (verdicts, report.json/md, plots), optionally steered."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from accelerate import PartialState

from toolprior.case_io import read_case_files
from toolprior.errors import InputError
from toolprior.evals.external_metrics import external_metrics
from toolprior.evals.faithfulness import faithfulness
from toolprior.evals.forensics import annotate_think, hallucination_rate, mismatch_examples
from toolprior.evals.harness import HarnessConfig, distributed_world
from toolprior.evals.harness import evaluate as evaluate_model
from toolprior.evals.report import write_eval_report
from toolprior.modeling import load_model, load_tokenizer
from toolprior.steering.apply import steering_factory
from toolprior.steering.vector import SteeringVector


def evaluate(args: argparse.Namespace) -> int:
    cases = read_case_files(args.cases)
    if args.limit is not None:
        cases = cases[: args.limit]
    world = distributed_world()  # launched as several processes: each scores a shard, rank 0 writes
    device = None
    if world is not None and torch.cuda.is_available():
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
        steer, steering_extras = steering_from_args(args, model, tokenizer)
        extras = {method: steering_extras}
    verdicts = evaluate_model(model, tokenizer, cases, config=config, steer=steer, desc=method)
    if world is not None and world[0] != 0:
        return 0  # every rank holds all gathered verdicts; rank 0 alone judges, scores and writes
    if not args.no_think_judge:
        verdicts = annotate_think(verdicts, cases=cases)  # the rule judge; feeds think_action_mismatch
    extras.setdefault(method, {})["forensics"] = _forensics(args, model, tokenizer, cases, verdicts)
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
    out: dict[str, Any] = {"hallucination": hallucination_rate(cases, verdicts)}
    if not args.no_think_judge:
        out["mismatch_examples"] = mismatch_examples(verdicts, k=5)
    if args.faithfulness:
        out["faithfulness"] = faithfulness(model, tokenizer, cases, verdicts, batch_size=args.batch_size)
    return out


def steering_from_args(args: argparse.Namespace, model: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """(steer factory, report extras) for `toolprior eval --steer V --alpha A --layers L`."""

    vector = SteeringVector.load(args.steer, model=model, tokenizer=tokenizer)
    layers = args.layers if args.layers is not None else vector.layers
    missing = [layer for layer in layers if layer not in vector.layers]
    if missing:
        raise InputError(f"--layers {missing}: the vector {args.steer} has layers {vector.layers}")
    factory = steering_factory(
        model,
        vector,
        args.alpha,
        positions=args.steer_positions,
        operator=args.steer_operator,
        layers=layers,
        tokenizer=tokenizer,
    )
    extras: dict[str, Any] = {
        "layer": layers[0] if len(layers) == 1 else layers,
        "alpha": args.alpha,
        "positions": args.steer_positions,
        "operator": args.steer_operator,
        "vector": str(args.steer),
        "vector_method": vector.meta.get("method"),
        "vector_split": vector.meta.get("split"),
    }
    if args.chosen_on:
        extras["chosen_on"] = args.chosen_on
    return factory, extras
