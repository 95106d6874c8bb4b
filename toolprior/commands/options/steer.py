"""`toolprior steer compute` (a steering vector from captured activations), `toolprior steer sweep` (choose
layer and alpha on the mine split, with dose-response, controls and plots), `toolprior steer export` (a GGUF control
vector for llama.cpp / repeng, or a shareable folder) and `toolprior steer import` (either, or a repeng / llama.cpp
GGUF, back into V.safetensors)."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolprior.commands.options.common import add_model_args, int_list, print_help_and_exit
from toolprior.steering_names import METHODS, OPERATORS, SOURCES
from toolprior.steering_names import POSITIONS as STEER_POSITIONS

VECTOR_POSITIONS: tuple[str, ...] = ("decision", "prompt_end")
EXPORT_FORMATS: tuple[str, ...] = ("gguf", "folder")


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
    compute.set_defaults(run=("steer", "compute"))

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
    sw.set_defaults(run=("steer", "sweep"))

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
    ex.set_defaults(run=("steer", "export"))

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
    im.set_defaults(run=("steer", "import_vector"))

    print_help_and_exit(steer, 2)
