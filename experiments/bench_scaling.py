"""How cost grows, for `make bench`'s scaling table and plot: capture time and peak memory against the number of
cases (1k, 5k, 20k), and sweep time against the number of alphas (1, 2, 4, 8, 16).

- Capture: a fresh process per size streams every block's output at the prompt's end for N cases to an
  `ActivationStore` (float16 on disk), on the bench's random model of the organism's first shape (6 layers, width
  128, experiments.bench.build_world); wall seconds of the capture, and the peak resident memory above what the
  process held after loading (VmHWM, reset before the capture), beside the megabytes written. The real model's
  per-case cost is the bench's capture_overhead_real ratio times its forward passes; its curve has this shape.
- Sweep: `steering.sweep.run_alphas` on the same cases at 1, 2, 4, 8 and 16 alphas (single-turn scoring, so the
  alphas share batches, prefills and prompt reads), on whatever model is given (the organism in `make bench`),
  seconds and the ratio to one alpha.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from toolprior.evals.harness import HarnessConfig
from toolprior.figures import save_figure
from toolprior.steering.sweep import run_alphas
from toolprior.steering.vector import SteeringVector

CASE_COUNTS: tuple[int, ...] = (1000, 5000, 20000)
ALPHA_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16)

_CAPTURE = """
import gc, sys, tempfile, time, torch
from pathlib import Path
from toolprior.experiments.bench import build_world
from toolprior.probes.capture import capture
from toolprior.probes.hook_points import all_resid_post
from toolprior.probes.store import ActivationStore
from toolprior.chat_template import render_prompt
tmp = Path(tempfile.mkdtemp())
model, tok, cases = build_world(tmp / "data")
n = int(sys.argv[1])
prompts = [render_prompt(tok, cases[i % len(cases)]) for i in range(n)]
def kib(field):  # a /proc/self/status line in KiB
    return int(next(l for l in open("/proc/self/status") if l.startswith(field)).split()[1])
gc.collect()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = kib("VmHWM:")
store = ActivationStore(tmp / "acts", dtype=torch.float16)
start = time.perf_counter()
capture(model, tok, prompts, all_resid_post(model), "prompt_end", batch_size=32, store=store)
seconds = time.perf_counter() - start
after = kib("VmHWM:")
disk = sum(f.stat().st_size for f in (tmp / "acts").rglob("*") if f.is_file()) // 1024
print(before, after, disk, seconds)
"""


def capture_cost(n: int) -> dict[str, Any]:
    """Seconds and peak memory of streaming `n` cases' all-layer activations to disk, in a process of its own."""
    out = subprocess.run([sys.executable, "-c", _CAPTURE, str(n)], capture_output=True, text=True, check=True)
    before, after, disk, seconds = out.stdout.split()[-4:]
    return {
        "cases": n,
        "seconds": round(float(seconds), 2),
        "rss_before_mb": round(int(before) / 1024, 1),
        "peak_rss_mb": round(int(after) / 1024, 1),
        "capture_mb": round((int(after) - int(before)) / 1024, 1),
        "written_mb": round(int(disk) / 1024, 1),
    }


def sweep_scaling(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Any],
    vector: SteeringVector,
    counts: Sequence[int] = ALPHA_COUNTS,
    *,
    positions: str = "generated",
    max_new_tokens: int = 48,
) -> list[dict[str, Any]]:
    """Seconds of one batched sweep of `cases` at each number of alphas (alphas spread over [-4, 4]), with the
    ratio to one alpha."""
    config = HarnessConfig(max_new_tokens=max_new_tokens, batch_size=len(cases), max_turns=1)
    rows = []
    for count in counts:
        alphas = [-4.0 + 8.0 * i / max(count - 1, 1) for i in range(count)] if count > 1 else [4.0]
        start = time.perf_counter()
        run_alphas(model, tokenizer, cases, vector, alphas, config, positions=positions)
        rows.append({"alphas": count, "seconds": round(time.perf_counter() - start, 2)})
    for row in rows:
        row["ratio_to_one"] = round(row["seconds"] / rows[0]["seconds"], 3)
    return rows


def plot_scaling(capture: Sequence[dict[str, Any]], sweep: Sequence[dict[str, Any]], path: Path, machine: str) -> Path:
    """Capture seconds and peak memory against cases; sweep seconds against alphas, beside linear growth."""
    fig = Figure(figsize=(10, 3.6))
    left, middle, right = fig.subplots(1, 3)
    cases = [r["cases"] for r in capture]
    left.plot(cases, [r["seconds"] for r in capture], "o-")
    left.set(xscale="log", yscale="log", xlabel="cases", ylabel="seconds", title="capture time (bench model)")
    middle.plot(cases, [r["capture_mb"] for r in capture], "o-", label="peak RSS above the loaded model")
    middle.plot(cases, [r["written_mb"] for r in capture], "s--", label="written to disk")
    middle.set(xscale="log", xlabel="cases", ylabel="MB", title="capture memory (streamed)")
    middle.legend(fontsize=7)
    alphas = [r["alphas"] for r in sweep]
    right.plot(alphas, [r["ratio_to_one"] for r in sweep], "o-", label="sweep")
    right.plot(alphas, alphas, ":", color="grey", label="one run per alpha")
    right.set(xscale="log", yscale="log", xlabel="alphas", ylabel="time / one alpha", title="sweep time (organism)")
    right.legend(fontsize=7)
    fig.suptitle(machine, fontsize=8)
    return save_figure(fig, path)
