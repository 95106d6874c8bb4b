"""Per-request steering with our exported vector in vLLM, through vllm-lens: first-token decisions at the decision
point, one request per (case, alpha), every alpha in one batch.

NOT RUN YET: written without a GPU (vLLM needs one); the llama.cpp check (experiments/llamacpp_agreement.py) is the
one that ran. Recipe, on a machine with a CUDA GPU:

    # Python >= 3.12 (vllm-lens 1.3.0 requires it, and vllm==0.30.0), beside this project's own dependencies
    pip install vllm-lens==1.3.0                  # pulls vllm 0.30.0; the plugin registers itself with vLLM
    pip install -e . --no-deps                    # this project (its other requirements as in requirements/)
    python -m toolprior.experiments.vllm_steering --model ~/.cache/toolprior/models/smollm2-135m-instruct \\
        --adapter experiments/organism/smollm2/adapter --vector runs/demo_smol2/steering/vector.safetensors \\
        --layer 22 --alphas 0 0.5 0.75 1 --cases runs/demo_smol2/data/mine.jsonl --limit 24 \\
        --thinks runs/demo_smol2/verdicts_cache/sft_mine.jsonl --compare --out runs/vllm_agreement

How it maps. vllm-lens's `SteeringVector(activations=v[None], layer_indices=[L], scale=alpha)` in a request's
`SamplingParams.extra_args["apply_steering_vectors"]` adds `alpha * v` to the output of decoder layer L (a forward
hook on the layer; for vLLM's fused-residual layers it adds to the hidden-states half of `(hidden, residual)`, which
the next layer sums into the stream), at every position of that request, prompt included: our layer L, `resid_post`,
`positions="all"`, the same as llama.cpp's direction.L (see steering/gguf_io.py). `norm_match` stays False (ours adds
the raw vector). `--positions from_decision` instead gives a 3-D vector at the last prompt position only
(`position_indices=[T - 1]`), which for this first-token readout on a forced think is exactly toolprior's
`from_decision`. Other requests in the same batch are not steered, or are steered by their own alpha.

The prompt is the case's prompt + `<think>THINK</think>` as token ids (the tokenizer of the model folder, as in
experiments/llamacpp_agreement.py), so vLLM's next token is read at the decision position. Each request asks for one
token, greedy, restricted to the five action tags' decision tokens (`allowed_token_ids`): the token vLLM picks is the
argmax over the tags, the decision. `logprobs=20` returns vLLM's raw log-probabilities (over the whole vocabulary,
before the restriction); where two tags are among them their difference is the logit margin. The organism's
adapter adds embedding rows (the format tags) that vLLM's LoRA cannot serve, so the adapter is merged first
(`--adapter`: merged into `--model` in float32 and saved under --out; or pass an already merged folder as --model).
dtype float32 by default (vllm-lens then sets TRITON_F32_DEFAULT=ieee so attention is true fp32); bfloat16 is faster
and agrees less closely.

`--compare` then runs toolprior's `steer()` (transformers, float32, cuda when there is one) on the same inputs with
the same positions and writes the agreement per alpha, as experiments/llamacpp_agreement.py does for llama.cpp.
Writes OUT/decisions.jsonl (one row per case and alpha) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from toolprior.case_io import read_cases
from toolprior.experiments.llamacpp_agreement import (
    action_token_ids,
    decision,
    decision_inputs,
    hf_decision_logits,
    load_organism,
    read_thinks,
)
from toolprior.modeling import load_model, load_tokenizer
from toolprior.steering.gguf_io import read_vector

INSTALL_HINT = "pip install vllm-lens==1.3.0 (Python >= 3.12; it installs vllm 0.30.0; needs a CUDA GPU)"
TOP_LOGPROBS = 20


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """base + PEFT adapter, merged in float32 (`merge_and_unload`) and saved with the base's tokenizer to `out`."""

    model, tokenizer = load_organism(base, adapter)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def lens_vector(vector: Any, layer: int, alpha: float, positions: str, n_tokens: int) -> Any:
    """The vllm-lens SteeringVector that adds alpha * vector[layer] after decoder layer `layer`: at every position
    ("all"), or at the last prompt position only ("from_decision", for a one-token readout)."""
    # lazy: vllm-lens is optional (GPU only)
    from vllm_lens import SteeringVector as LensVector

    v = vector[layer].float()
    if positions == "all":
        return LensVector(activations=v[None], layer_indices=[layer], scale=float(alpha))
    return LensVector(
        activations=v[None, None], layer_indices=[layer], scale=float(alpha), position_indices=[n_tokens - 1]
    )


def tag_logprobs(logprobs: Any, tags: dict[str, int]) -> dict[str, float | None]:
    """{action: vLLM's raw log-probability of its decision token, None where it was not among the top ones}."""
    if not logprobs:
        return dict.fromkeys(tags)
    first = logprobs[0]
    return {action: (float(first[token].logprob) if token in first else None) for action, token in tags.items()}


def run_vllm(
    args: argparse.Namespace, model_dir: Path, inputs: list[tuple[str, str, list[int]]], vector: Any, tags: dict
) -> dict[tuple[str, float], dict[str, Any]]:
    """{(case id, alpha): {"decision", "tag_logprobs"}} from vLLM with vllm-lens steering, all in one batch."""
    # lazy: vLLM is optional (GPU only)
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=str(model_dir),
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        seed=0,
    )
    prompts, params, keys = [], [], []
    for case_id, _, ids in inputs:
        for alpha in args.alphas:
            extra = {}
            if alpha:
                extra["apply_steering_vectors"] = [lens_vector(vector, args.layer, alpha, args.positions, len(ids))]
            params.append(
                SamplingParams(
                    temperature=0.0,
                    max_tokens=1,
                    allowed_token_ids=list(tags.values()),
                    logprobs=TOP_LOGPROBS,
                    extra_args=extra,
                )
            )
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            keys.append((case_id, alpha))
    outputs = llm.generate(prompts, params)
    by_token = {token: action for action, token in tags.items()}
    results = {}
    for key, output in zip(keys, outputs, strict=True):
        completion = output.outputs[0]
        token = completion.token_ids[0]
        results[key] = {
            "decision": by_token.get(token, f"token {token}"),
            "tag_logprobs": tag_logprobs(completion.logprobs, tags),
        }
    del llm
    return results


def run_toolprior(model_dir: Path, inputs, vector: Any, layer: int, alphas, positions: str) -> dict:
    """{(case id, alpha): [vocab] logits at the decision position} under our steer()."""

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_dir, dtype="float32", device=device)
    tokenizer = load_tokenizer(model_dir)
    single = vector.only([layer])
    out = {}
    for case_id, _, ids in inputs:
        for alpha in alphas:
            out[case_id, alpha] = hf_decision_logits(
                model, ids, single if alpha else None, alpha, positions, tokenizer
            ).cpu()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, type=Path, help="HF model folder (merged, or the base with --adapter)"
    )
    parser.add_argument("--adapter", type=Path, default=None, help="PEFT adapter to merge into --model first")
    parser.add_argument(
        "--vector", required=True, type=Path, help="V.safetensors (+ sidecar), a vector folder or .gguf"
    )
    parser.add_argument("--layer", type=int, default=22)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0])
    parser.add_argument("--positions", choices=["all", "from_decision"], default="all")
    parser.add_argument("--cases", required=True, type=Path, help="case JSONL (e.g. the mine split)")
    parser.add_argument("--limit", type=int, default=24, help="the first N cases (default 24)")
    parser.add_argument("--thinks", type=Path, default=None, help="verdicts JSONL whose thinks to force (else gold)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--compare", action="store_true", help="also run toolprior steer() and report agreement")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    args = parser.parse_args(argv)
    try:  # vLLM and vllm-lens are not dependencies of this project (no GPU on its machines)
        # lazy: vLLM is optional (GPU only)
        import vllm  # noqa: F401
        import vllm_lens  # noqa: F401  (registers its vLLM plugin on import, as vLLM would on start)
    except ImportError as err:
        print(f"vllm_steering: vLLM with vllm-lens is not installed here ({err}); {INSTALL_HINT}")
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = merge_adapter(args.model, args.adapter, args.out / "merged") if args.adapter else args.model
    vector = read_vector(args.vector)
    if args.layer not in vector.layers:
        raise SystemExit(f"vllm_steering: the vector has layers {vector.layers}, not {args.layer}")
    tokenizer = load_tokenizer(model_dir)
    tags = action_token_ids(tokenizer)
    inputs = decision_inputs(
        tokenizer, read_cases(args.cases)[: args.limit], read_thinks(args.thinks) if args.thinks else None
    )
    vllm_results = run_vllm(args, model_dir, inputs, vector, tags)
    ours = run_toolprior(model_dir, inputs, vector, args.layer, args.alphas, args.positions) if args.compare else {}

    rows = []
    for case_id, source, ids in inputs:
        for alpha in args.alphas:
            got = vllm_results[case_id, alpha]
            row = {"id": case_id, "think": source, "tokens": len(ids), "alpha": alpha, "vllm": got["decision"]}
            row["vllm_tag_logprobs"] = got["tag_logprobs"]
            if (case_id, alpha) in ours:
                logits = ours[case_id, alpha]
                row["toolprior"] = decision(logits, tags)[0]
                logprobs = logits.log_softmax(-1)
                gaps = [
                    abs(float(logprobs[token]) - lp)
                    for action, token in tags.items()
                    if (lp := got["tag_logprobs"][action]) is not None and math.isfinite(lp)
                ]
                row["max_abs_tag_logprob_gap"] = max(gaps) if gaps else None
            rows.append(row)
    with (args.out / "decisions.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    summary: dict[str, Any] = {
        "model": str(model_dir),
        "vector": str(args.vector),
        "layer": args.layer,
        "positions": args.positions,
        "dtype": args.dtype,
        "n_cases": len(inputs),
        "per_alpha": [],
    }
    for alpha in args.alphas:
        at = [r for r in rows if r["alpha"] == alpha]
        entry: dict[str, Any] = {"alpha": alpha, "n": len(at), "vllm_decisions": dict(Counter(r["vllm"] for r in at))}
        if args.compare:
            entry["toolprior_decisions"] = dict(Counter(r["toolprior"] for r in at))
            entry["agree"] = sum(r["vllm"] == r["toolprior"] for r in at)
            gaps = [r["max_abs_tag_logprob_gap"] for r in at if r["max_abs_tag_logprob_gap"] is not None]
            entry["max_abs_tag_logprob_gap"] = max(gaps) if gaps else None
        summary["per_alpha"].append(entry)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    for entry in summary["per_alpha"]:
        line = f"alpha {entry['alpha']:g}: vLLM {entry['vllm_decisions']}"
        if args.compare:
            line += f"; toolprior {entry['toolprior_decisions']}; agree {entry['agree']}/{entry['n']}"
        print(line)
    print(f"wrote {args.out / 'decisions.jsonl'} and {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
