"""The README's steering example: load an agent and a saved vector, generate with and without steering.

    .venv/bin/python -m experiments.steer_example --model organism --adapter runs/demo/sft \\
        --vector runs/demo/clarify.safetensors --alpha 4.0

The lines that matter:

    model = load_model(model_path, adapter=adapter)
    tokenizer = load_tokenizer(model_path)
    vector = SteeringVector.load(vector_path, model=model, tokenizer=tokenizer)   # refuses another model
    with steer(model, vector, alpha=4.0):
        ids = model.generate(**inputs, max_new_tokens=96)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

PROMPT = [
    {
        "role": "system",
        "content": "You are a logistics assistant.\nPending shipments: SHP-1029 (Bristol), SHP-1030 (Leeds).",
    },
    {"role": "user", "content": "Please verify my shipment."},
]


def run(
    model_path: str, vector_path: str, alpha: float = 4.0, adapter: str | None = None, max_new_tokens: int = 96
) -> dict[str, str]:
    """{"unsteered": text, "steered": text} of the agent's turn on the example prompt."""
    import torch

    from steering import SteeringVector, steer
    from toolprior.modeling import load_model, load_tokenizer

    model = load_model(model_path, adapter=adapter)
    tokenizer = load_tokenizer(model_path)
    vector = SteeringVector.load(vector_path, model=model, tokenizer=tokenizer)

    text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt").to(model.device)
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    out: dict[str, str] = {}
    with torch.no_grad():
        ids = model.generate(**inputs, **settings)
        out["unsteered"] = tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        with steer(model, vector, alpha=alpha):
            ids = model.generate(**inputs, **settings)
        out["steered"] = tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder, or 'organism'")
    parser.add_argument("--adapter", default=None, help="PEFT adapter folder")
    parser.add_argument("--vector", required=True, help="vector file from `toolprior steer compute`")
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args(argv)
    out = run(args.model, args.vector, args.alpha, args.adapter, args.max_new_tokens)
    print(f"unsteered: {out['unsteered']}")
    print(f"steered (alpha {args.alpha:g}): {out['steered']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
