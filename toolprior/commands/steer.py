"""`toolprior steer compute` (a steering vector from captured activations), `toolprior steer sweep` (choose
layer and alpha on the mine split, with dose-response, controls and plots), `toolprior steer export` (a GGUF control
vector for llama.cpp / repeng, or a shareable folder) and `toolprior steer import` (either, or a repeng / llama.cpp
GGUF, back into V.safetensors)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METHODS = ("mean_diff", "pca_paired", "probe")
SOURCES = ("twins", "classes")
VECTOR_POSITIONS = ("decision", "prompt_end")
STEER_POSITIONS = ("all", "prompt", "generated", "from_decision")
OPERATORS = ("add", "ablate", "ablate_then_add")
EXPORT_FORMATS = ("gguf", "folder")


def int_list(text: str) -> list[int]:
    """ "2,3" -> [2, 3] (argparse type; one clear error on anything else)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer numbers like 2,3; got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected layer numbers >= 0 like 2,3; got {text!r}")
    return values


def float_list(values: list[str]) -> list[float]:
    out: list[float] = []
    for item in values:
        for x in item.split(","):
            if x.strip():
                try:
                    out.append(float(x))
                except ValueError:
                    from toolprior.errors import InputError

                    raise InputError(f"--alphas: not a number: {x!r}") from None
    return out


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="local model folder, or 'organism' for the embedded base")
    parser.add_argument("--adapter", type=Path, default=None, help="PEFT adapter folder applied on top")
    parser.add_argument("--quantize", choices=["none", "nf4"], default="none")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--trust-remote-code", action="store_true")


def load_agent(args: argparse.Namespace) -> tuple[Any, Any]:
    from toolprior.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
    model = load_model(
        args.model,
        quantize=args.quantize,
        adapter=args.adapter,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
    )
    return model, tokenizer


def register(subparsers: argparse._SubParsersAction) -> None:
    steer = subparsers.add_parser("steer", help="compute steering vectors and sweep layer x alpha on the mine split")
    sub = steer.add_subparsers(dest="steer_command", metavar="SUBCOMMAND")

    compute = sub.add_parser(
        "compute",
        help="compute a clarify-minus-call_tool vector from activations",
        description=(
            "Captures blocks.{i}.hook_resid_post at --position for the clarify and call_tool cases of --cases and "
            "writes a vector (safetensors + JSON sidecar with the model fingerprint). --source twins uses the "
            "cases' twin links (paired differences); classes uses class means."
        ),
    )
    add_model_args(compute)
    compute.add_argument("--cases", required=True, type=Path, nargs="+", help="train or mine case JSONL file(s)")
    compute.add_argument("--layers", required=True, type=int_list, help="comma-separated layers, e.g. 2,3")
    compute.add_argument("--method", choices=METHODS, default="mean_diff")
    compute.add_argument("--source", choices=SOURCES, default="twins")
    compute.add_argument("--position", choices=VECTOR_POSITIONS, default="decision")
    compute.add_argument("--batch-size", type=int, default=16)
    compute.add_argument("--out", required=True, type=Path, help="vector file to write (V.safetensors)")
    compute.set_defaults(func=_compute)

    sw = sub.add_parser(
        "sweep",
        help="score a vector at each layer x alpha on the mine split and choose a setting",
        description=(
            "Scores the vector at each of --layers (alone) x --alphas on --cases with the eval harness, then "
            "chooses the setting with the best clarify accuracy whose call_tool accuracy stays >= the floor. "
            "Refuses eval / eval_novel cases. Writes sweep.json, chosen.json and plots/ into --out. Negative "
            "alphas: --alphas -8 -4 0 4 8 or --alphas=-8,-4,0,4,8."
        ),
    )
    add_model_args(sw)
    sw.add_argument("--vector", required=True, type=Path, help="vector file from `steer compute`")
    sw.add_argument("--cases", required=True, type=Path, nargs="+", help="mine-split case JSONL file(s)")
    sw.add_argument("--layers", required=True, type=int_list, help="comma-separated layers of the vector to try")
    sw.add_argument("--alphas", required=True, nargs="+", help="alphas (both signs for the dose-response)")
    sw.add_argument("--positions", choices=STEER_POSITIONS, default="all")
    sw.add_argument("--operator", choices=OPERATORS, default="add")
    sw.add_argument(
        "--min-call-tool", type=float, default=None, help="call_tool accuracy floor (default baseline - 0.05)"
    )
    sw.add_argument("--controls", action="store_true", help="also run random-direction and random-layer controls")
    sw.add_argument("--seeds", type=int_list, default=[0, 1, 2], help="random-control seeds (default 0,1,2)")
    sw.add_argument("--batch-size", type=int, default=32)
    sw.add_argument("--max-new-tokens", type=int, default=160)
    sw.add_argument("--limit", type=int, default=None, help="only the first N cases (smoke runs)")
    sw.add_argument("--out", required=True, type=Path, help="output folder")
    sw.set_defaults(func=_sweep)

    ex = sub.add_parser(
        "export",
        help="write a vector as a llama.cpp / repeng GGUF control vector, or as a shareable folder",
        description=(
            "--format gguf writes the control vector file llama.cpp's --control-vector reads (and repeng's "
            "ControlVector.import_gguf): layer L becomes direction.L, added to the output of block L, as here. "
            "llama.cpp adds it at every position and cannot steer block 0, so a vector with layer 0 is refused "
            "(pick the others with --layers). --format folder writes steering_vector.safetensors, "
            "steering_config.json and a README.md model card (SteeringVector.from_pretrained reads it)."
        ),
    )
    ex.add_argument("vector", type=Path, help="V.safetensors (with its sidecar), a vector folder, or a .gguf file")
    ex.add_argument("out", type=Path, help="the .gguf file (--format gguf) or the folder (--format folder) to write")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default="gguf")
    ex.add_argument("--layers", type=int_list, default=None, help="export only these layers of the vector")
    ex.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="gguf only: scale baked into the file (default 1; or scale in llama.cpp: --control-vector-scaled F A)",
    )
    ex.add_argument("--model-hint", default=None, help="gguf only: controlvector.model_hint (default: the model type)")
    ex.set_defaults(func=_export)

    im = sub.add_parser(
        "import",
        help="read a GGUF control vector (llama.cpp, repeng, ours) or a vector folder into V.safetensors",
        description=(
            "Reads SOURCE (a .gguf control vector: direction.k becomes layer k; or a folder from `steer export "
            "--format folder`) and writes OUT (V.safetensors + its JSON sidecar) for `steer sweep` and `eval --steer`. "
            "A GGUF from elsewhere has no model fingerprint: loading it with a model checks its width and layers only."
        ),
    )
    im.add_argument("source", type=Path, help="a .gguf control vector file or a vector folder")
    im.add_argument("out", type=Path, help="vector file to write (V.safetensors)")
    im.set_defaults(func=_import)

    steer.set_defaults(func=lambda args: _help(steer))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _compute(args: argparse.Namespace) -> int:
    from steering.compute import capture_for_vector, compute_from_cases, groups_for, paired_differences
    from steering.plots import plot_cosine_hist
    from steering.consistency import cosine_consistency
    from toolprior.case_io import read_case_files
    from toolprior.errors import InputError

    cases = read_case_files(args.cases)
    if args.method == "pca_paired" and args.source != "twins":
        raise InputError("--method pca_paired needs --source twins (paired differences)")
    model, tokenizer = load_agent(args)
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


def _sweep(args: argparse.Namespace) -> int:
    from evals.harness import HarnessConfig
    from steering.plots import plot_controls, plot_dose_response, plot_heatmap
    from steering.sweep import choose, controls, sweep
    from steering.vector import SteeringVector
    from toolprior.atomic import atomic_write_text
    from toolprior.case_io import read_case_files
    from toolprior.errors import InputError

    alphas = float_list(args.alphas)
    cases = read_case_files(args.cases)
    if args.limit is not None:
        cases = cases[: args.limit]
    from steering.conditional import refuse_held_out

    refuse_held_out(cases, "steer sweep")  # before the model loads
    model, tokenizer = load_agent(args)
    vector = SteeringVector.load(args.vector, model=model, tokenizer=tokenizer)
    missing = [layer for layer in args.layers if layer not in vector.layers]
    if missing:
        raise InputError(f"--layers {missing}: the vector {args.vector} has layers {vector.layers}")
    config = HarnessConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, max_turns=1)
    result = sweep(
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
        )
        ctrl.save(out / "controls.json")
        plot_controls(ctrl, plots / "controls.png")
        chosen["controls"] = {
            p.label: {"clarify_acc": p.clarify_acc, "call_tool_acc": p.call_tool_acc} for p in ctrl.points
        }
    atomic_write_text(out / "chosen.json", json.dumps(chosen, indent=1) + "\n")
    print(f"wrote {out / 'sweep.json'}, {out / 'chosen.json'} and {plots}/")
    return 0


def read_vector(path: Path) -> Any:
    """A vector from V.safetensors (+ sidecar), a `save_pretrained` folder or a GGUF control vector file."""
    from steering.gguf_io import import_gguf
    from steering.vector import SteeringVector

    if path.is_dir():
        return SteeringVector.from_pretrained(path)
    if path.suffix.lower() == ".gguf":
        return import_gguf(path)
    return SteeringVector.load(path)


def _export(args: argparse.Namespace) -> int:
    from steering.gguf_io import export_gguf
    from toolprior.errors import InputError, Problem

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


def _import(args: argparse.Namespace) -> int:
    vector = read_vector(args.source)
    vector.save(args.out)
    norms = ", ".join(f"{layer}: {norm:.4g}" for layer, norm in vector.norms().items())
    print(f"wrote {args.out} (+ {args.out.with_suffix('.json').name}): layers {vector.layers}, norms {norms}")
    return 0


def _fmt(x: float | None) -> str:
    return "  - " if x is None else f"{x:.3f}"


def steering_from_args(args: argparse.Namespace, model: Any, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """(steer factory, report extras) for `toolprior eval --steer V --alpha A --layers L`."""
    from steering.apply import steering_factory
    from steering.vector import SteeringVector
    from toolprior.errors import InputError

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
