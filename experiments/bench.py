"""`make bench`: performance ratios measured side by side in one run, medians of repeated runs.

    python -m toolprior.experiments.bench --out runs/bench/bench.json [--repeats 3] [--capture-cases 5000]

The model is a random-weight Qwen3 of the organism's shape (6 layers, width 128) with a tokenizer trained on the
benchmark's text, so the ratios do not depend on a trained organism. Goals (issue 8): steering_overhead <= 1.03,
capture_overhead <= 1.15, capture_vs_nnsight <= 1.0, capture_vs_transformer_lens <= 1.0, batched_eval_speedup >= 4,
sweep_cost <= 2.5 (steering the generated tokens, whose sweep shares each case's prefill; the same sweep
steering every position, which cannot share it, is written beside it as sweep_cost_all_positions). Each ratio is
written with the two timings it divides, so a reader can check it.

Peers (issue 19), the same run, the same inputs: steering_vs_steering_vectors and steering_vs_repeng (our `steer`
forward passes / the same forward passes under steering-vectors' `SteeringVector.apply` or repeng's `ControlModel`
control, same layer, alpha and positions) and capture_vs_steering_vectors (our `capture` / steering-vectors'
`record_activations` over the same batches), each goal <= 1.0. `bench_peers(model, tokenizer, texts)` runs them on
any model; `--only peers` runs them alone (into runs/bench/bench_peers.json unless --out says otherwise).
tests/test_peer_reference.py checks that the three steer to the same outputs where they should.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.chat_template import render_prompt
from toolprior.decoder_config import text_config
from toolprior.evals.generation import generate
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import pad_left, pad_token_id
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.steering.apply import steer, steering_factory
from toolprior.steering.sweep import run_alphas
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
PEER_GOALS = {
    "steering_vs_steering_vectors": ("<=", 1.0),
    "steering_vs_repeng": ("<=", 1.0),
    "capture_vs_steering_vectors": ("<=", 1.0),
}


def judge(entry: dict[str, Any], op: str, goal: float) -> dict[str, Any]:
    """`entry` with its ratio rounded and its goal and whether it is met added."""
    ratio = entry["ratio"]
    entry["ratio"] = round(ratio, 3)
    entry["goal"] = f"{op} {goal}"
    entry["met"] = ratio <= goal if op == "<=" else ratio >= goal
    return entry


def paired_times(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Medians of `a` and `b` timed in alternation (a, b, a, b, ...), so drift in the machine's speed (other
    load, frequency scaling) falls on both sides alike; a ratio of two medians taken minutes apart does not."""
    a()
    b()
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(repeats):
        for fn, times in ((a, times_a), (b, times_b)):
            gc.collect()  # the garbage one side leaves (nnsight's traced graphs) is not the other side's time
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and lazy imports
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    results: dict[str, Any] = {}

    def forward() -> None:
        # the decoder stack without the LM head and without a KV cache: the same work capture does, minus reading
        # the hook points (a cache would charge the plain side for allocations capture never makes)
        with torch.inference_mode():
            for i in range(0, len(prompts), 16):
                enc = tokenizer(prompts[i : i + 16], add_special_tokens=False, padding=True, return_tensors="pt")
                model.model(**enc, use_cache=False)

    def cap(backend: str) -> Callable[[], Any]:
        return lambda: capture(model, tokenizer, prompts, hooks, "prompt_end", batch_size=16, backend=backend)

    # this machine's timings swing by 10-20% between runs; three times the samples for the ratios near 1
    plain, ours = paired_times(forward, cap("hooks"), 3 * repeats)
    results["capture_overhead"] = {"ratio": ours / plain, "capture_s": ours, "forward_s": plain}
    for backend, key in (("nnsight", "capture_vs_nnsight"), ("transformer_lens", "capture_vs_transformer_lens")):
        theirs, ours_here = paired_times(cap(backend), cap("hooks"), 3 * repeats)
        results[key] = {"ratio": ours_here / theirs, "ours_s": ours_here, "theirs_s": theirs}

    gen_prompts = prompts[:32]
    # equal lengths on both sides: a steered random model may stop sooner or later, which is not overhead
    fixed = functools.partial(
        generate, model, tokenizer, gen_prompts, max_new_tokens=48, min_new_tokens=48, batch_size=32
    )
    factory = steering_factory(model, vector, 4.0, tokenizer=tokenizer)
    unsteered, steered = paired_times(
        fixed,
        lambda: fixed(steer=factory),
        2 * repeats,  # the goal is within 3%: more samples than the coarser ratios need
    )
    results["steering_overhead"] = {"ratio": steered / unsteered, "steered_s": steered, "unsteered_s": unsteered}

    eval_cases = cases[:32]
    batched_cfg = HarnessConfig(max_new_tokens=48, batch_size=32)
    single_cfg = HarnessConfig(max_new_tokens=48, batch_size=1)
    batched = median_time(lambda: evaluate(model, tokenizer, eval_cases, config=batched_cfg, progress=False), repeats)
    one_by_one = median_time(lambda: evaluate(model, tokenizer, eval_cases, config=single_cfg, progress=False), 1)
    results["batched_eval_speedup"] = {"ratio": one_by_one / batched, "one_by_one_s": one_by_one, "batched_s": batched}

    alphas = [-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0, 16.0]
    # sweeps score the decision at the first turn (max_turns=1, as steering.sweep does), which is what lets the
    # alpha grid run as one batch: run_alphas widens the batch to 8 alphas x 32 cases, against the same 32 cases
    # at one alpha with the same config
    one_alpha_cfg = sweep_cfg = HarnessConfig(max_new_tokens=48, batch_size=len(eval_cases), max_turns=1)
    # Steering the generated tokens leaves the prompt alone, so the 8 copies of a case share one prefill
    # (evals.shared_prefill) and decoding reads the prompt once per case (evals.shared_prefix_attention), while
    # every generated token is steered. Not "from_decision": this random model never
    # writes </think>, so nothing would be steered and the think-sharing fork would make the sweep look free.
    # Steering every position cannot share the prefill; it is measured beside it, without a goal.
    for key, positions in (("sweep_cost", "generated"), ("sweep_cost_all_positions", "all")):
        one_alpha = steering_factory(model, vector, 4.0, positions=positions, tokenizer=tokenizer)
        sweep_s, single = paired_times(
            functools.partial(run_alphas, model, tokenizer, eval_cases, vector, alphas, sweep_cfg, positions=positions),
            functools.partial(
                evaluate, model, tokenizer, eval_cases, config=one_alpha_cfg, steer=one_alpha, progress=False
            ),
            repeats,
        )
        results[key] = {"ratio": sweep_s / single, "sweep_8_alphas_s": sweep_s, "single_alpha_s": single,
                        "positions": positions}  # fmt: skip
    results["sweep_cost_all_positions"]["ratio"] = round(results["sweep_cost_all_positions"]["ratio"], 3)
    for key, (op, goal) in GOALS.items():
        judge(results[key], op, goal)
    results.update(bench_peers(model, tokenizer, prompts, repeats))
    if capture_cases:
        results["capture_peak_memory"] = capture_memory(capture_cases)
    return results


# ------------------------------------------------------------------------------------------------------------ peers


def import_repeng() -> Any:
    """`import repeng` on numpy 2. repeng 0.4.0 names `np.float_` in annotations that run at import
    (repeng/extract.py lines 230, 236, 239: `other: int | float | np.int_ | np.float_`), and numpy 2 removed that
    alias, so a plain import raises AttributeError. The alias (np.float64, what it always meant) is put on numpy
    for the import only and taken off again; nothing in repeng uses it at run time."""

    if "repeng" in sys.modules:
        return sys.modules["repeng"]
    missing = not hasattr(np, "float_")
    if missing:
        setattr(np, "float_", np.float64)  # noqa: B010 (numpy 2's stubs have no float_)
    try:
        # lazy: a peer library, installed with the peers extra
        import repeng
    finally:
        if missing:
            delattr(np, "float_")
    return repeng


@contextmanager
def repeng_control(model: Any, vector: Any, alpha: float) -> Iterator[Any]:
    """repeng's control of `model` by `vector` (a `steering.vector.SteeringVector`) at `alpha` while the block
    lasts: `ControlModel(model, layers)` wraps the decoder blocks in place (repeng/control.py: `layers[layer_id] =
    ControlModule(layer)`), `set_control(ControlVector, coeff=alpha)` adds `coeff * directions[i]` to block i's
    output, and `unwrap()` puts the original blocks back on exit, also on error. Yields the ControlModel."""
    repeng = import_repeng()
    directions = {layer: vector[layer].detach().float().cpu().numpy() for layer in vector.layers}
    control = repeng.ControlModel(model, list(vector.layers))
    try:
        control.set_control(repeng.ControlVector(model_type=model.config.model_type, directions=directions), alpha)
        yield control
    finally:
        control.unwrap()


def left_padded_batches(tokenizer: Any, texts: Sequence[str], batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The texts as `capture` runs them: sorted longest first, left padded, position ids counted from each row's
    first real token (`probes.capture.pad_left`). repeng needs the position ids on a batch: on transformers 5 the
    decoder hands every block [1, T] position ids when the caller gives none, and repeng's padding mask (built from
    them) then fails to reshape to [B, T]."""

    encoded = sorted((tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts), key=len, reverse=True)
    batches = []
    for i in range(0, len(encoded), batch_size):
        ids, mask, positions = pad_left(encoded[i : i + batch_size], pad_token_id(tokenizer))
        batches.append({"input_ids": ids, "attention_mask": mask, "position_ids": positions})
    return batches


def bench_peers(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    repeats: int = 3,
    *,
    layer: int | None = None,
    alpha: float = 4.0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Our steering and capture against steering-vectors' and repeng's, on `model` (any Hugging Face causal LM
    whose blocks sit at `model.layers`, as both peers expect), side by side, same inputs, medians of runs taken in
    alternation (`paired_times`).

    - steering_vs_steering_vectors / steering_vs_repeng: the decoder stack's forward passes (`model.model`, no KV
      cache, no LM head: the head is the same work on every side and on long prompts most of it) over the
      left-padded batches, with position ids, a random vector at `layer` (default: the middle block) added at
      every position at `alpha`: our `steer(model, vector, alpha)` / steering-vectors' `SteeringVector({layer:
      v}).apply(model, multiplier=alpha)` / repeng's `set_control(..., coeff=alpha)`. The context is entered once
      around all batches on every side (steering-vectors guesses its layer names on entry, repeng wraps the
      blocks).
    - capture_vs_steering_vectors: every block's output at the last prompt position of every text: our
      `capture(..., all_resid_post(model), "prompt_end")` against `record_activations(model)` around the decoder
      stack's forward passes (`model.model`, no LM head, as the capture_overhead baseline), each side tokenizing
      and padding its own batches, then keeping the last column of each recorded [B, T, d]."""
    # lazy: a peer library, installed with the peers extra
    import steering_vectors

    n_layers = len(decoder_layers(model))
    layer = n_layers // 2 if layer is None else layer
    d = int(text_config(model).hidden_size)
    g = torch.Generator().manual_seed(0)
    ours_vector = SteeringVector({layer: torch.randn(d, generator=g) / d**0.5})
    their_vector = steering_vectors.SteeringVector({layer: ours_vector[layer]})
    batches = left_padded_batches(tokenizer, texts, batch_size)
    results: dict[str, Any] = {}

    stack = model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def forwards() -> None:
        with torch.inference_mode():
            for batch in batches:
                stack(**batch, use_cache=False)

    def under(context: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with context():
                forwards()

        return run

    ours_steer = under(lambda: steer(model, ours_vector, alpha))
    sv_steer = under(lambda: their_vector.apply(model, multiplier=alpha))
    repeng_steer = under(lambda: repeng_control(model, ours_vector, alpha))
    for key, theirs in (("steering_vs_steering_vectors", sv_steer), ("steering_vs_repeng", repeng_steer)):
        theirs_s, ours_s = paired_times(theirs, ours_steer, 3 * repeats)
        results[key] = {"ratio": ours_s / theirs_s, "ours_s": ours_s, "theirs_s": theirs_s}

    hooks = all_resid_post(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ordered = sorted(texts, key=lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]), reverse=True)

    def ours_capture() -> Any:
        return capture(model, tokenizer, ordered, hooks, "prompt_end", batch_size=batch_size)

    def sv_capture() -> dict[int, torch.Tensor]:

        rows: dict[int, list[torch.Tensor]] = {i: [] for i in range(n_layers)}
        with torch.inference_mode(), steering_vectors.record_activations(model) as recorded:
            for i in range(0, len(ordered), batch_size):
                encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ordered[i : i + batch_size]]
                ids, mask, positions = pad_left(encoded, pad_id)
                stack(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
                for j in range(n_layers):
                    rows[j].append(recorded[j].pop()[:, -1])
        return {j: torch.cat(parts) for j, parts in rows.items()}

    theirs_s, ours_s = paired_times(sv_capture, ours_capture, 3 * repeats)
    results["capture_vs_steering_vectors"] = {"ratio": ours_s / theirs_s, "ours_s": ours_s, "theirs_s": theirs_s}
    for key, (op, goal) in PEER_GOALS.items():
        judge(results[key], op, goal)
        results[key]["layer"] = layer
    return results


def bench_peers_only(repeats: int) -> dict[str, Any]:
    """`bench_peers` on the bench's model and prompts (the same 64 prompts `bench` uses)."""

    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, cases = build_world(Path(tmp))
    prompts = sorted((render_prompt(tokenizer, c) for c in cases[:64]), key=len, reverse=True)
    return bench_peers(model, tokenizer, prompts, repeats)


def capture_memory(n: int) -> dict[str, Any]:
    """Peak RSS of a separate process that streams `n` cases' all-layer activations to disk, next to the RSS of
    the same process after loading the model (the difference is what capturing costs)."""
    code = f"""
import gc, sys, tempfile, torch
from pathlib import Path
sys.path.insert(0, {str(Path.cwd())!r})
from toolprior.experiments.bench import build_world
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.probes.store import ActivationStore
from toolprior.chat_template import render_prompt
tmp = Path(tempfile.mkdtemp())
model, tok, cases = build_world(tmp / "data")
prompts = [render_prompt(tok, cases[i % len(cases)]) for i in range({n})]
def kib(field):  # a /proc/self/status line in KiB
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = kib("VmHWM:")
store = ActivationStore(tmp / "acts", dtype=torch.float16)
capture(model, tok, prompts, all_resid_post(model), "prompt_end", batch_size=32, store=store)
after = kib("VmHWM:")
disk = sum(f.stat().st_size for f in (tmp / "acts").rglob("*") if f.is_file()) // 1024
print(before, after, disk)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, disk = (int(x) for x in out.stdout.split()[-3:])
    # a streamed capture's peak grows with one batch, not with the cases: compare it with what it wrote
    return {"cases": n, "rss_before_mb": round(before / 1024, 1), "peak_rss_mb": round(after / 1024, 1),
            "capture_mb": round((after - before) / 1024, 1), "written_mb": round(disk / 1024, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default runs/bench/bench.json (bench_peers.json)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--capture-cases", type=int, default=5000, help="0 skips the memory measurement")
    parser.add_argument("--only", choices=("all", "peers"), default="all", help="peers: the peer comparisons only")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.only == "peers":
        results = bench_peers_only(args.repeats)
        out = args.out or Path("runs/bench/bench_peers.json")
    else:
        results = bench(args.repeats, args.capture_cases)
        out = args.out or Path("runs/bench/bench.json")
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:30s} {json.dumps(value)}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
