"""The organism's decisions against training steps and against the SFT action mix: clarify and call_tool accuracy
of each saved checkpoint of each run, on one fixed stratified sample of the held-out `eval` + `eval_novel` cases
(the same ids at every step and for every mix), with Wilson intervals, plus each run's validation-loss curve from
its trainer state. Nothing is chosen here; it shows how the prior grows (or does not) with compute and with mix.

    python experiments/organism_curves.py --runs runs/organism_smollm2 --out runs/organism_smollm2/curves \
        --per-action 32 [--mixes realistic fix] [--seeds 0]

Scored exactly as `experiments/organism_seeds.py` scores (greedy, first turn, 160 new tokens, the adapter on the
bf16 base, unmerged); the final step's point is read from that script's verdicts of the same adapter, restricted to
the sample, rather than generated again. Resumes: a checkpoint already scored is skipped. Writes `curves.json` and
`curves.png`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.cases import Case
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.evals.statistics import wilson_interval
from toolprior.modeling import load_model, load_tokenizer
from toolprior.verdict import read_verdicts

ACTIONS = ("clarify", "call_tool")


def stratified_sample(cases: list[Case], per_action: int, seed: int = 0) -> list[Case]:
    """`per_action` cases of each of clarify and call_tool and `per_action` of the other actions together, drawn
    with a fixed seed from the held-out cases in id order."""
    rng = random.Random(seed)
    ordered = sorted(cases, key=lambda c: c.id)
    groups: dict[str, list[Case]] = {"clarify": [], "call_tool": [], "other": []}
    for case in ordered:
        action = case.expected_action.value
        groups[action if action in ACTIONS else "other"].append(case)
    picked: list[Case] = []
    for name in ("clarify", "call_tool", "other"):
        group = groups[name]
        picked += rng.sample(group, min(per_action, len(group)))
    return sorted(picked, key=lambda c: c.id)


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, adapter folder) of every saved checkpoint of one SFT run, and the final adapter at its last step."""
    found = [(int(p.name.split("-")[1]), p) for p in run.glob("checkpoint-*") if p.is_dir()]
    summary = run / "train_summary.json"
    if summary.exists() and (run / "adapter").is_dir():
        steps = json.loads(summary.read_text()).get("steps")
        if steps is not None and all(step != int(steps) for step, _ in found):
            found.append((int(steps), run / "adapter"))
    return sorted(found)


def val_loss_curve(run: Path) -> list[dict[str, float]]:
    """(step, eval_loss) from the last checkpoint's trainer state."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("log_history", [])
    return [{"step": h["step"], "val_loss": round(h["eval_loss"], 4)} for h in history if "eval_loss" in h]


def score_point(verdicts: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for action in ACTIONS:
        rows = [v for v in verdicts if v.expected == action]
        k = sum(v.correct for v in rows)
        wrong = [v.predicted_label for v in rows if not v.correct]
        out[action] = {
            "n": len(rows),
            "acc": round(k / len(rows), 4) if rows else None,
            "ci95": [round(x, 4) for x in wilson_interval(k, len(rows))] if rows else None,
            "top_wrong": max(set(wrong), key=wrong.count) if wrong else None,
        }
    return out


def plot(curves: dict[str, Any], path: Path) -> None:
    # lazy: matplotlib is needed only when a plot is drawn
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is needed only when a plot is drawn
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, action in zip(axes, ACTIONS, strict=True):
        for name, run in sorted(curves["runs"].items()):
            points = sorted(run["points"], key=lambda p: p["step"])
            steps = [p["step"] for p in points]
            acc = [p[action]["acc"] for p in points]
            lo = [p[action]["acc"] - p[action]["ci95"][0] for p in points]
            hi = [p[action]["ci95"][1] - p[action]["acc"] for p in points]
            ax.errorbar(steps, acc, yerr=[lo, hi], marker="o", capsize=3, label=name)
        ax.set_title(f"{action} accuracy (held-out sample)")
        ax.set_xlabel("SFT optimizer steps")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("accuracy, Wilson 95%")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="organism_seeds.py's --out folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", default="smollm2")
    parser.add_argument("--mixes", nargs="+", default=["realistic", "fix"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--per-action", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    data = args.runs / "data_realistic"
    held_out = read_cases(data / "eval.jsonl") + read_cases(data / "eval_novel.jsonl")
    sample = stratified_sample(held_out, args.per_action)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "curves.json"
    curves: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    curves.update(
        split="eval + eval_novel (held out), stratified sample",
        sample_ids=[c.id for c in sample],
        per_action=args.per_action,
    )
    tokenizer = load_tokenizer(args.base)
    config = HarnessConfig(max_new_tokens=160, batch_size=args.batch_size, max_turns=1)
    for mix in args.mixes:
        for seed in args.seeds:
            name, run = f"{mix} seed {seed}", args.runs / f"sft_{mix}_seed{seed}"
            entry = curves["runs"].setdefault(name, {"points": []})
            entry["val_loss"] = val_loss_curve(run)
            final = json.loads((run / "train_summary.json").read_text())["steps"]
            scored = args.runs / f"eval_{mix}_seed{seed}" / "verdicts" / "sft.jsonl"
            wanted = {c.id for c in sample}
            for step, adapter in checkpoints(run):
                if any(p["step"] == step for p in entry["points"]):
                    continue
                if step == final and scored.exists():
                    verdicts = [v for v in read_verdicts(scored) if v.id in wanted]
                    source = str(scored)
                else:
                    model = load_model(args.base, adapter=adapter, dtype="bfloat16")
                    verdicts = evaluate(model, tokenizer, sample, config=config, desc=f"{name} step {step}")
                    source = str(adapter)
                entry["points"].append({"step": step, "source": source, **score_point(verdicts)})
                print(name, "step", step, json.dumps(entry["points"][-1]), flush=True)
                atomic_write_text(path, json.dumps(curves, indent=2) + "\n")
    atomic_write_text(path, json.dumps(curves, indent=2) + "\n")
    plot(curves, args.out / "curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
