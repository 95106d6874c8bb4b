"""Check the embedded organism over seeds, with the balanced-mix control: base + SFT + eval for each seed and for
two SFT action mixes (the case study's realistic mix and a balanced one), then one table.

    python experiments/organism_seeds.py --out runs/organism_seeds [--seeds 0 1 2] [--data runs/data]

A step whose result already exists is skipped, so an interrupted run picks up where it stopped. Writes
`organism.json` (per seed and mix: per-action accuracy with Wilson intervals, top wrong action, tool-name and
argument accuracy, wall seconds of base and SFT) and `organism.md`. Numbers are from the `eval` split only.
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
    "balanced": "call_tool=20,answer_directly=20,escalate=20,clarify=20,refuse=20",
}
SFT_CONFIG = "experiments/configs/sft_organism.yaml"


def _cli(*args: str) -> float:
    """Run one toolprior command; its wall seconds. Output streams through (progress bars)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "toolprior.cli", *args], check=True)
    return round(time.perf_counter() - start, 1)


def run_seed(out: Path, seed: int, data_dirs: dict[str, Path]) -> dict[str, Any]:
    """Base, then per mix SFT and eval, for one seed; each step skipped when its result exists. Both mixes are
    scored on the realistic benchmark's eval file: the generator's draws shift with the train mix, so the two
    benchmarks' eval files differ, and a comparison must run on the very same cases."""
    eval_cases = data_dirs["realistic"] / "eval.jsonl"
    times_path = out / f"times_seed{seed}.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    base = out / f"base_seed{seed}"
    if not (base / "model.safetensors").exists():
        times["base_s"] = _cli("train", "base", "--out", str(base), "--seed", str(seed))
    results: dict[str, Any] = {}
    for mix, data in data_dirs.items():
        sft, ev = out / f"sft_{mix}_seed{seed}", out / f"eval_{mix}_seed{seed}"
        if not (sft / "adapter").exists():
            times[f"sft_{mix}_s"] = _cli(
                "train", "sft", SFT_CONFIG, "--output-dir", str(sft),
                "--set", f"model.base={base}", "--set", f"training.seed={seed}", "--set", f"data.dir={data}",
            )  # fmt: skip
        if not (ev / "report.json").exists():
            _cli(
                "eval", "--model", str(base), "--adapter", str(sft / "adapter"), "--quantize", "nf4",
                "--cases", str(eval_cases), "--out", str(ev), "--max-turns", "1", "--method", "sft",
            )  # fmt: skip
        results[mix] = json.loads((ev / "report.json").read_text())["methods"]["sft"]
        atomic_write_text(times_path, json.dumps(times, indent=2) + "\n")
    return {"seed": seed, "times": times, "methods": results}


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def render(runs: list[dict[str, Any]]) -> str:
    actions = [a.value for a in Action]
    lines = [
        "# The organism over seeds (split: eval)",
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
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data_dirs = {mix: args.out / f"data_{mix}" for mix in MIXES}
    for mix, folder in data_dirs.items():
        if not (folder / "eval.jsonl").exists():
            _cli("data", "generate", "--out", str(folder), "--seed", str(args.data_seed), "--mix", MIXES[mix])
    runs = [run_seed(args.out, seed, data_dirs) for seed in args.seeds]
    atomic_write_text(args.out / "organism.json", json.dumps(runs, indent=2) + "\n")
    atomic_write_text(args.out / "organism.md", render(runs))
    print(render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
