"""Check an organism over seeds, with a mix control: SFT + eval for each seed and each SFT action mix (the case
study's realistic mix, and a control: its proposed fix with more clarify, or a balanced mix), then one table.

    python experiments/organism_seeds.py --out runs/organism_smollm2 --base smollm2 \
        --sft-config experiments/configs/sft_smollm2.yaml --mixes realistic fix [--seeds 0 1 2]
    python experiments/organism_seeds.py --out runs/organism_seeds      # the tiny organism (trains a base per seed)

A step whose result already exists is skipped, so an interrupted run picks up where it stopped (SFT itself resumes
from its last checkpoint). Writes `organism.json` (per seed and mix: per-action accuracy with Wilson intervals, top
wrong action, tool-name and argument accuracy, wall seconds) and `organism.md`. Numbers are from the held-out
`eval` and `eval_novel` splits of the realistic benchmark, the same case ids for every mix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from toolprior.actions import Action
from toolprior.atomic import atomic_write_text

MIXES = {
    "realistic": "call_tool=40,answer_directly=23,escalate=15,clarify=13,refuse=10",
    # the case study's proposed fix: clarify 25-30%, call_tool down to 30%
    "fix": "call_tool=30,answer_directly=18,escalate=12,clarify=28,refuse=12",
    "balanced": "call_tool=20,answer_directly=20,escalate=20,clarify=20,refuse=20",
}
SFT_CONFIG = "experiments/configs/sft_organism.yaml"
EVAL_SPLITS = ("eval", "eval_novel")


def _cli(*args: str) -> float:
    """Run one toolprior command; its wall seconds. Output streams through (progress bars)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "toolprior.cli", *args], check=True)
    return round(time.perf_counter() - start, 1)


def run_seed(
    out: Path, seed: int, data_dirs: dict[str, Path], base_model: str, sft_config: str, quantize: str, dtype: str
) -> dict[str, Any]:
    """Per mix SFT and eval for one seed (after a base per seed when `base_model` is "organism"); each step skipped
    when its result exists. Every mix is scored on the realistic benchmark's eval files: the generator's draws
    shift with the train mix, so the benchmarks' eval files differ, and a comparison must run on the same cases."""
    eval_cases = [str(data_dirs["realistic"] / f"{split}.jsonl") for split in EVAL_SPLITS]
    times_path = out / f"times_seed{seed}.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    base = Path(base_model) if base_model != "organism" else out / f"base_seed{seed}"
    # Each step is done when the file its command writes last is there (a kill can leave the others half-written):
    # base_recipe.json after the base, train_summary.json after the adapter, benchmark.json after a benchmark.
    if base_model == "organism" and not (base / "base_recipe.json").exists():
        times["base_s"] = _cli("train", "base", "--out", str(base), "--seed", str(seed))
    results: dict[str, Any] = {}
    for mix, data in data_dirs.items():
        sft, ev = out / f"sft_{mix}_seed{seed}", out / f"eval_{mix}_seed{seed}"
        if not (sft / "train_summary.json").exists():
            times[f"sft_{mix}_s"] = _cli(
                "train", "sft", sft_config, "--output-dir", str(sft),
                "--set", f"model.base={base}", "--set", f"training.seed={seed}", "--set", f"data.dir={data}",
            )  # fmt: skip
        if not (ev / "report.json").exists():
            _cli(
                "eval", "--model", str(base), "--adapter", str(sft / "adapter"), "--quantize", quantize, "--dtype", dtype,
                "--cases", *eval_cases, "--out", str(ev), "--max-turns", "1", "--method", "sft",
            )  # fmt: skip
        results[mix] = json.loads((ev / "report.json").read_text())["methods"]["sft"]
        atomic_write_text(times_path, json.dumps(times, indent=2) + "\n")
        atomic_write_text(
            out / "organism.partial.json", json.dumps({"seed": seed, "methods": results}, indent=2) + "\n"
        )
    return {"seed": seed, "times": times, "methods": results}


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def render(runs: list[dict[str, Any]]) -> str:
    actions = [a.value for a in Action]
    lines = [
        "# The organism over seeds (splits: eval + eval_novel, held out)",
        "",
        f"Seeds {', '.join(str(r['seed']) for r in runs)}; mean ± sd of per-action accuracy (the decision).",
        "",
        "| SFT mix | " + " | ".join(actions) + " | clarify answered with | tool name right | arguments right |",
        "| --- |" + " --- |" * (len(actions) + 3),
    ]
    for mix in MIXES:
        ms = [r["methods"][mix] for r in runs if mix in r["methods"]]
        if not ms:
            continue
        cells = [
            _mean_sd([m["per_action"][a]["acc"] for m in ms]) if a in ms[0]["per_action"] else "–" for a in actions
        ]
        wrong = [m["per_action"].get("clarify", {}) for m in ms]
        top = {w.get("top_wrong") for w in wrong}
        rate = statistics.mean(w.get("top_wrong_rate") or 0.0 for w in wrong)
        lines.append(
            f"| {mix} | " + " | ".join(cells) + f" | {'/'.join(sorted(map(str, top)))} {rate:.0%} "
            f"| {_mean_sd([m.get('tool_name_accuracy') or 0.0 for m in ms])} "
            f"| {_mean_sd([m.get('tool_accuracy') or 0.0 for m in ms])} |"
        )
    lines += ["", "Wall seconds (base, SFT per mix):", ""]
    lines += [f"- seed {r['seed']}: {json.dumps(r['times'])}" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=7, help="benchmark seed (same eval cases for both mixes)")
    parser.add_argument("--base", default="organism", help="'organism' (a tiny base trained per seed), or a model")
    parser.add_argument("--sft-config", default=SFT_CONFIG)
    parser.add_argument("--quantize", default="nf4", choices=["none", "nf4"], help="how eval loads the base")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="eval's compute dtype")
    parser.add_argument("--mixes", nargs="+", default=["realistic", "balanced"], choices=list(MIXES))
    args = parser.parse_args(argv)
    if "realistic" not in args.mixes:
        parser.error("--mixes must include realistic (every mix is scored on its eval cases)")
    args.out.mkdir(parents=True, exist_ok=True)
    data_dirs = {mix: args.out / f"data_{mix}" for mix in args.mixes}
    for mix, folder in data_dirs.items():
        if not (folder / "benchmark.json").exists():
            _cli("data", "generate", "--out", str(folder), "--seed", str(args.data_seed), "--mix", MIXES[mix])
    runs = [
        run_seed(args.out, seed, data_dirs, args.base, args.sft_config, args.quantize, args.dtype)
        for seed in args.seeds
    ]
    atomic_write_text(args.out / "organism.json", json.dumps(runs, indent=2) + "\n")
    atomic_write_text(args.out / "organism.md", render(runs))
    print(render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
