"""The README's steering example: load an agent and a saved vector, generate with and without steering.

    .venv/bin/python -m toolprior.experiments.steer_example --model organism --adapter runs/study_s0/sft/adapter \\
        --vector runs/vec_s0 --alpha 1.0

README "Steering" shows the body of `run`; tests/test_steering_sweep.py runs it and checks the README matches.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from toolprior.modeling import load_agent
from toolprior.steering import SteeringVector, steer

PROMPT = [
    {
        "role": "system",
        "content": "You are a logistics assistant.\nPending shipments: SHP-1029 (Bristol), SHP-1030 (Leeds).",
    },
    {"role": "user", "content": "Please verify my shipment."},
]


def run(
    model_path: str,
    vector_path: str,
    alpha: float = 1.0,
    adapter: str | None = None,
    max_new_tokens: int = 96,
    positions: str = "all",
) -> dict[str, str]:
    """{"unsteered": text, "steered": text} of the agent's turn on the example prompt."""

    model, tokenizer = load_agent(model_path, adapter)  # add quantize="nf4" for the 4-bit agent
    vector = SteeringVector.load(vector_path, model=model, tokenizer=tokenizer)  # refuses any other model
    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(model.device)
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad():
        plain = model.generate(**inputs, **settings)
        with steer(model, vector, alpha=alpha, positions=positions, tokenizer=tokenizer):  # hooks out on exit
            steered = model.generate(**inputs, **settings)
    width = inputs["input_ids"].shape[1]
    outputs = {"unsteered": plain, "steered": steered}
    return {name: tokenizer.decode(ids[0, width:], skip_special_tokens=True) for name, ids in outputs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder, or 'organism'")
    parser.add_argument("--adapter", default=None, help="PEFT adapter folder")
    parser.add_argument("--vector", required=True, help="vector file from `toolprior steer compute`")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--positions", default="all", choices=["all", "prompt", "generated", "from_decision"])
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args(argv)
    out = run(args.model, args.vector, args.alpha, args.adapter, args.max_new_tokens, args.positions)
    print(f"unsteered: {out['unsteered']}")
    print(f"steered (alpha {args.alpha:g}): {out['steered']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
