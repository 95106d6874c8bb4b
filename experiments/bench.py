"""`make bench`: performance ratios measured side by side in one run, medians of repeated runs.

    python -m toolprior.experiments.bench --out runs/bench/bench.json [--repeats 3] [--capture-cases 5000]

The model is a random-weight Qwen3 of the organism's shape (6 layers, width 128) with a tokenizer trained on the
benchmark's text, so the ratios do not depend on a trained organism. Goals (issue 8): steering_overhead <= 1.03,
capture_overhead <= 1.15, capture_vs_nnsight <= 1.0, capture_vs_transformer_lens <= 1.0, batched_eval_speedup >= 4,
sweep_cost <= 2.5 (steering the generated tokens, whose sweep shares each case's prefill; the same sweep
steering every position, which cannot share it, is written beside it as sweep_cost_all_positions). Each ratio is
written with the two timings it divides, so a reader can check it.

On the SmolLM2 organism, the same run (experiments.bench_real): the overhead ratios again (`*_real`), the peers
(experiments.bench_peers: our `steer` and `capture` against steering-vectors' and repeng's on the same inputs, goals
<= 1.0), the SFT step against plain TRL (experiments.bench_sft) and the scaling table and plot
(experiments.bench_scaling). `--only tiny` or `--only real` runs one half.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.chat_template import render_prompt
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.experiments.bench_measures import capture_overhead, steering_overhead, sweep_cost
from toolprior.experiments.bench_real import bench_real
from toolprior.experiments.bench_scaling import capture_cost
from toolprior.experiments.bench_timing import judge, median_time, paired_times
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.steering.vector import SteeringVector
from toolprior.tokenizer import train_tokenizer
from toolprior.training.base import BaseConfig, model_config
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

GOALS = {
    "steering_overhead": ("<=", 1.03),
    "capture_overhead": ("<=", 1.15),
    "capture_vs_nnsight": ("<=", 1.0),
    "capture_vs_transformer_lens": ("<=", 1.0),
    "batched_eval_speedup": (">=", 4.0),
    "sweep_cost": ("<=", 2.5),
}


def build_world(root: Path) -> tuple[Any, Any, list[Any]]:

    write_benchmark(root, seed=11, config=BenchmarkConfig().replace(train_size=300, val_size=10, mine_size=10))
    cases = read_cases(root / "eval.jsonl")
    texts = [m.content for c in read_cases(root / "train.jsonl") for m in c.messages]
    tokenizer = train_tokenizer(texts, vocab_size=2048)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(BaseConfig(), tokenizer)).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, cases


def bench(repeats: int, capture_cases: int) -> dict[str, Any]:

    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, cases = build_world(Path(tmp))
    # sorted by length, as capture and generate batch them, so no side pays for padding the other avoids
    prompts = sorted((render_prompt(tokenizer, c) for c in cases[:64]), key=len, reverse=True)
    hooks = all_resid_post(model)
    d = model.config.hidden_size
    vector = SteeringVector({2: torch.randn(d) / d**0.5})
    results: dict[str, Any] = {"capture_overhead": capture_overhead(model, tokenizer, prompts, repeats)}

    def cap(backend: str) -> Callable[[], Any]:
        return lambda: capture(model, tokenizer, prompts, hooks, "prompt_end", batch_size=16, backend=backend)

    for backend, key in (("nnsight", "capture_vs_nnsight"), ("transformer_lens", "capture_vs_transformer_lens")):
        theirs, ours_here = paired_times(cap(backend), cap("hooks"), 3 * repeats)
        results[key] = {"ratio": ours_here / theirs, "ours_s": ours_here, "theirs_s": theirs}
    results["steering_overhead"] = steering_overhead(model, tokenizer, prompts[:32], vector, repeats)

    eval_cases = cases[:32]
    batched_cfg = HarnessConfig(max_new_tokens=48, batch_size=32)
    single_cfg = HarnessConfig(max_new_tokens=48, batch_size=1)
    batched = median_time(lambda: evaluate(model, tokenizer, eval_cases, config=batched_cfg, progress=False), repeats)
    one_by_one = median_time(lambda: evaluate(model, tokenizer, eval_cases, config=single_cfg, progress=False), 1)
    results["batched_eval_speedup"] = {"ratio": one_by_one / batched, "one_by_one_s": one_by_one, "batched_s": batched}

    # Steering the generated tokens leaves the prompt alone, so the 8 copies of a case share one prefill
    # (evals.shared_prefill) and decoding reads the prompt once per case (evals.shared_prefix_attention), while
    # every generated token is steered. Not "from_decision": this random model never
    # writes </think>, so nothing would be steered and the think-sharing fork would make the sweep look free.
    # Steering every position cannot share the prefill; it is measured beside it, without a goal.
    results["sweep_cost"] = sweep_cost(model, tokenizer, eval_cases, vector, repeats, "generated")
    results["sweep_cost_all_positions"] = sweep_cost(model, tokenizer, eval_cases, vector, repeats, "all")
    results["sweep_cost_all_positions"]["ratio"] = round(results["sweep_cost_all_positions"]["ratio"], 3)
    for key, (op, goal) in GOALS.items():
        judge(results[key], op, goal)
    if capture_cases:
        results["capture_peak_memory"] = capture_memory(capture_cases)
    return results


def capture_memory(n: int) -> dict[str, Any]:
    """Peak RSS of a separate process that streams `n` cases' all-layer activations to disk, next to the RSS of
    the same process after loading the model (the difference is what capturing costs): one row of the scaling
    table (experiments.bench_scaling.capture_cost) without its time."""
    row = capture_cost(n)
    row.pop("seconds")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/bench.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--capture-cases", type=int, default=5000, help="0 skips the memory measurement")
    parser.add_argument(
        "--only", choices=("all", "tiny", "real"), default="all",
        help="tiny: the random model's six ratios; real: the SmolLM2 organism's, the peers, SFT and scaling",
    )  # fmt: skip
    parser.add_argument("--no-sft", action="store_true", help="skip the SFT step ratios (about 10 minutes here)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    results: dict[str, Any] = {}
    if args.only in ("all", "tiny"):
        results.update(bench(args.repeats, args.capture_cases))
    if args.only in ("all", "real"):
        scaling = args.out.parent / "scaling.png"
        results.update(bench_real(args.repeats, sft=not args.no_sft, scaling=scaling))
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:34s} {json.dumps(value)}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
