"""`make bench` on the SmolLM2 organism: the base (SmolLM2-135M-Instruct from its wheel) with the shipped organism
adapter merged, in bfloat16, as the study runs it, on prompts of the organism's own benchmark (seed 7).

- steering_overhead_real, capture_overhead_real, sweep_cost_real (8 alphas; steering the generated tokens, as the
  tiny sweep_cost; the study's own from-the-decision-point sweep is written beside it as
  sweep_cost_real_from_decision, which shares each case's think between its alphas);
- the peers (experiments.bench.bench_peers): steering_vs_steering_vectors, steering_vs_repeng,
  capture_vs_steering_vectors;
- sft_step_vs_plain_trl (bf16) and sft_step_vs_plain_trl_nf4 (experiments.bench_sft);
- the scaling table (experiments.bench_scaling): capture against cases on the bench model, sweep against alphas
  on the organism, and its plot.

Sizes are smaller than the tiny model's (16 prompts, 32 new tokens): the organism's tool prompts are 500-900
tokens, and a ratio needs the same work on both sides, not much of it.
"""

from __future__ import annotations

import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

from toolprior.case_io import read_cases
from toolprior.chat_template import render_prompt
from toolprior.decoder_config import text_config
from toolprior.experiments.bench_measures import capture_overhead, steering_overhead, sweep_cost
from toolprior.experiments.bench_peers import bench_peers
from toolprior.experiments.bench_scaling import CASE_COUNTS, capture_cost, plot_scaling, sweep_scaling
from toolprior.experiments.bench_sft import sft_step_ratio
from toolprior.experiments.bench_timing import judge
from toolprior.experiments.organism_adapter import ORGANISM_DIR
from toolprior.model_source import prepare_smollm2
from toolprior.modeling import decoder_layers, load_model, load_tokenizer
from toolprior.steering.vector import SteeringVector
from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

REAL_GOALS = {
    "steering_overhead_real": ("<=", 1.03),
    "capture_overhead_real": ("<=", 1.10),
    "sweep_cost_real": ("<=", 2.5),
}
SFT_GOALS = {"sft_step_vs_plain_trl": ("<=", 1.05), "sft_step_vs_plain_trl_nf4": ("<=", 1.05)}


def organism_world(root: Path) -> tuple[Any, Any, list[Any]]:
    """(the organism merged, its tokenizer, the seed-7 benchmark's eval cases)."""
    write_benchmark(root, seed=7, config=BenchmarkConfig().replace(train_size=40, val_size=8, mine_size=8))
    base = prepare_smollm2()
    tokenizer = load_tokenizer(base)
    model = load_model(base, adapter=ORGANISM_DIR / "adapter", dtype="bfloat16").merge_and_unload().eval()
    return model, tokenizer, read_cases(root / "eval.jsonl")


def machine() -> str:
    """The machine the numbers come from, in words: the CPU's model name, the threads torch uses, torch's version."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def bench_real(repeats: int, sft: bool = True, scaling: Path | None = None) -> dict[str, Any]:
    """Every real-model measurement (see the module docstring) in one run."""
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, cases = organism_world(Path(tmp))
    # a spread of categories (the file goes category by category), longest first as capture and generate batch
    picked = cases[:: max(1, len(cases) // 16)][:16]
    prompts = sorted((render_prompt(tokenizer, c) for c in picked), key=len, reverse=True)
    layer = len(decoder_layers(model)) // 2
    d = int(text_config(model).hidden_size)
    vector = SteeringVector({layer: torch.randn(d, generator=torch.Generator().manual_seed(0)) / d**0.5})
    results: dict[str, Any] = {
        "steering_overhead_real": steering_overhead(model, tokenizer, prompts, vector, repeats, new_tokens=32),
        "capture_overhead_real": capture_overhead(model, tokenizer, prompts, repeats),
        "sweep_cost_real": sweep_cost(model, tokenizer, picked, vector, repeats, "generated", new_tokens=32),
        "sweep_cost_real_from_decision": sweep_cost(
            model, tokenizer, picked, vector, repeats, "from_decision", new_tokens=96
        ),
    }
    results["sweep_cost_real_from_decision"]["ratio"] = round(results["sweep_cost_real_from_decision"]["ratio"], 3)
    for key, (op, goal) in REAL_GOALS.items():
        judge(results[key], op, goal)
    results.update(bench_peers(model, tokenizer, prompts, max(1, repeats - 1), layer=layer, alpha=4.0))
    if scaling is not None:
        capture_rows = [capture_cost(n) for n in CASE_COUNTS]
        sweep_rows = sweep_scaling(model, tokenizer, picked, vector, max_new_tokens=32)
        results["scaling"] = {"capture_bench_model": capture_rows, "sweep_organism": sweep_rows}
        plot_scaling(capture_rows, sweep_rows, scaling, machine())
    del model
    if sft:
        for key, quantize in (("sft_step_vs_plain_trl", "none"), ("sft_step_vs_plain_trl_nf4", "nf4")):
            results[key] = sft_step_ratio(quantize, steps=4, repeats=2)
        for key, (op, goal) in SFT_GOALS.items():
            judge(results[key], op, goal)
    results["machine"] = machine()
    return results
