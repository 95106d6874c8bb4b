"""`toolprior steer compute` (a steering vector from captured activations), `toolprior steer sweep` (choose
layer and alpha on the mine split, with dose-response, controls and plots), `toolprior steer export` (a GGUF control
vector for llama.cpp / repeng, or a shareable folder) and `toolprior steer import` (either, or a repeng / llama.cpp
GGUF, back into V.safetensors)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_case_files
from toolprior.errors import InputError, Problem
from toolprior.evals.harness import HarnessConfig
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import load_agent
from toolprior.steering.compute import capture_for_vector, compute_from_cases, groups_for, paired_differences
from toolprior.steering.conditional import refuse_held_out
from toolprior.steering.consistency import cosine_consistency
from toolprior.steering.gguf_io import export_gguf, read_vector
from toolprior.steering.plots import plot_controls, plot_cosine_hist, plot_dose_response, plot_heatmap
from toolprior.steering.sweep import choose, controls
from toolprior.steering.sweep import sweep as sweep_settings
from toolprior.steering.vector import SteeringVector


def _load_agent(args: argparse.Namespace) -> tuple[CausalLM, Tokenizer]:
    """The agent of --model, --adapter, --quantize, --dtype and --trust-remote-code."""
    return load_agent(
        args.model,
        args.adapter,
        quantize=args.quantize,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
    )


def float_list(values: list[str]) -> list[float]:
    out: list[float] = []
    for item in values:
        for x in item.split(","):
            if x.strip():
                try:
                    out.append(float(x))
                except ValueError:
                    raise InputError(f"--alphas: not a number: {x!r}") from None
    return out


def compute(args: argparse.Namespace) -> int:
    cases = read_case_files(args.cases)
    if args.method == "pca_paired" and args.source != "twins":
        raise InputError("--method pca_paired needs --source twins (paired differences)")
    model, tokenizer = _load_agent(args)
    try:
        acts, wanted = capture_for_vector(
            model,
            tokenizer,
            cases,
            args.layers,
            args.position,
            batch_size=args.batch_size,
            progress=True,
            positive="clarify",
            negative="call_tool",
        )
        vector = compute_from_cases(
            model,
            tokenizer,
            wanted,
            args.layers,
            args.method,
            args.source,
            args.position,
            acts=acts,
            positive="clarify",
            negative="call_tool",
        )
    except ValueError as err:
        raise InputError(str(err)) from None
    if args.source == "twins":
        # A vector is only as good as its pairs agree: the histogram of each pair's cosine with the mean.
        groups = groups_for(acts, "twins", wanted, positive="clarify", negative="call_tool")
        if len(groups.positive) >= 2:
            for layer in args.layers:
                cos = cosine_consistency(paired_differences(acts, layer, groups))
                plot_cosine_hist(cos, args.out.with_name(f"{args.out.stem}_cosine_L{layer}.png"))
    vector.save(args.out)
    n = vector.meta.get("n", {})
    print(f"{args.method} vector from {args.source} ({n}) at {args.position}, layers {vector.layers}")
    for layer, norm in vector.norms().items():
        extra = vector.meta.get("cosine_consistency", {}).get(str(layer))
        print(
            f"  layer {layer}: norm {norm:.4f}" + (f", mean pairwise cosine {extra:.3f}" if extra is not None else "")
        )
    print(f"wrote {args.out} (+ {args.out.with_suffix('.json').name})")
    return 0


def sweep(args: argparse.Namespace) -> int:
    alphas = float_list(args.alphas)
    cases = read_case_files(args.cases)
    if args.limit is not None:
        cases = cases[: args.limit]
    refuse_held_out(cases, "steer sweep")  # before the model loads
    model, tokenizer = _load_agent(args)
    vector = SteeringVector.load(args.vector, model=model, tokenizer=tokenizer)
    missing = [layer for layer in args.layers if layer not in vector.layers]
    if missing:
        raise InputError(f"--layers {missing}: the vector {args.vector} has layers {vector.layers}")
    config = HarnessConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, max_turns=1)
    result = sweep_settings(
        model,
        tokenizer,
        cases,
        vector,
        args.layers,
        alphas,
        config=config,
        positions=args.positions,
        operator=args.operator,
        progress=True,
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "sweep.json")
    best = choose(result, min_call_tool=args.min_call_tool)
    b = result.baseline
    print(
        f"baseline: clarify {_fmt(b.clarify_acc)}, call_tool {_fmt(b.call_tool_acc)}, "
        f"overall {_fmt(b.overall)} (n={b.n})"
    )
    for p in result.points:
        print(
            f"  layer {p.layer} alpha {p.alpha:+g}: clarify {_fmt(p.clarify_acc)}, call_tool {_fmt(p.call_tool_acc)}, "
            f"overall {_fmt(p.overall)}, moved wrong {p.moved_wrong:.3f}"
        )
    chosen: dict[str, Any] = {"chosen": None, "chosen_on": result.splits, "vector": str(args.vector)}
    if best is not None:
        chosen["chosen"] = {
            "layer": best.layer,
            "alpha": best.alpha,
            "positions": args.positions,
            "operator": args.operator,
        }
        chosen["scores"] = {k: v for k, v in best.to_dict().items() if k != "scores"}
        print(f"chosen on {','.join(result.splits)}: layer {best.layer}, alpha {best.alpha:g}")
    else:
        print("no setting keeps call_tool accuracy above the floor")
    plots = out / "plots"
    for layer in args.layers:
        plot_dose_response(result, layer, plots / f"dose_response_L{layer}.png")
    plot_heatmap(result, plots / "layer_alpha_clarify.png", "clarify_acc")
    plot_heatmap(result, plots / "layer_alpha_call_tool.png", "call_tool_acc")
    if args.controls and best is not None and best.layer is not None:
        ctrl = controls(
            model,
            tokenizer,
            cases,
            vector,
            best.layer,
            best.alpha,
            seeds=args.seeds,
            config=config,
            positions=args.positions,
            operator=args.operator,
            swept=result,  # the chosen setting's point comes from the sweep, not a second run
        )
        ctrl.save(out / "controls.json")
        plot_controls(ctrl, plots / "controls.png")
        chosen["controls"] = {
            p.label: {"clarify_acc": p.clarify_acc, "call_tool_acc": p.call_tool_acc} for p in ctrl.points
        }
    atomic_write_text(out / "chosen.json", json.dumps(chosen, indent=1) + "\n")
    print(f"wrote {out / 'sweep.json'}, {out / 'chosen.json'} and {plots}/")
    return 0


def export(args: argparse.Namespace) -> int:
    vector = read_vector(args.vector)
    if args.layers is not None:
        missing = [layer for layer in args.layers if layer not in vector.layers]
        if missing:
            raise InputError(f"--layers {missing}: the vector {args.vector} has layers {vector.layers}")
        vector = vector.only(args.layers)
    if args.format == "folder":
        if args.alpha is not None or args.model_hint is not None:
            raise InputError("--alpha and --model-hint apply to --format gguf only")
        folder = vector.save_pretrained(args.out)
        print(f"wrote {folder}/ (steering_vector.safetensors, steering_config.json, README.md), layers {vector.layers}")
        return 0
    alpha = 1.0 if args.alpha is None else args.alpha
    try:
        path = export_gguf(vector, args.out, alpha=alpha, model_hint=args.model_hint)
    except ValueError as err:
        raise InputError(Problem(str(args.vector), None, "layers", f"{err} (--layers picks them)")) from None
    print(
        f"wrote {path}: direction.{{L}} for layers {vector.layers} (x{alpha:g}); llama.cpp adds it to the output of "
        f"block L at every position: --control-vector-scaled {path.name} STRENGTH"
    )
    return 0


def import_vector(args: argparse.Namespace) -> int:
    vector = read_vector(args.source)
    vector.save(args.out)
    norms = ", ".join(f"{layer}: {norm:.4g}" for layer, norm in vector.norms().items())
    print(f"wrote {args.out} (+ {args.out.with_suffix('.json').name}): layers {vector.layers}, norms {norms}")
    return 0


def _fmt(x: float | None) -> str:
    return "  - " if x is None else f"{x:.3f}"
