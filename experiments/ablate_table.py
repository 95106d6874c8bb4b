"""An ablation's results as a reader sees them: `table.md` (one row per arm, the split and seeds named, partial
runs listed) and `plots/arms.png` (per-arm accuracy, sd whiskers, a dot per seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolprior.experiments.study_summary import ASKS_TESTS
from toolprior.figures import save_figure


def _cell(pair: list[float] | None, runs: int = 2) -> str:
    """mean ± sd; the value alone when it comes from one run (an sd of one value says nothing)."""
    if pair is None:
        return "–"
    return f"{pair[0]:.3f}" if runs == 1 else f"{pair[0]:.3f} ± {pair[1]:.3f}"


def _interval(pooled: dict[str, Any] | None) -> str:
    """The Wilson 95% interval of an action's accuracy over every seed's cases pooled, as ' [lo, hi]'."""
    if not pooled:
        return ""
    lo, hi = pooled["ci95"]
    return f" [{lo:.3f}, {hi:.3f}]"


def _share(pooled: dict[str, Any] | None) -> str:
    """How many of the arm's clarify cases (every seed) it answered with call_tool, as 'k of n'."""
    return f"{pooled['count']} of {pooled['total']}" if pooled and pooled["total"] else ""


def _per_action(results: dict[str, Any]) -> str:
    """The cases of each action in one run (the same ids in every run), as 'call_tool 110, clarify 36, ...'."""
    first = next(iter(results["arms"].values()), None)
    if not first or not first.get("pooled"):
        return ""
    runs = len(first["seeds"])
    counts = {a: c["n"] // runs for a, c in first["pooled"].items() if "ci95" in c and a != "overall"}
    return ", ".join(f"{a} {n}" for a, n in sorted(counts.items(), key=lambda item: -item[1]))


def _asks(by_seed: dict[str, Any] | None) -> str:
    """Asks on the clarify cases / on the call_tool cases, every seed summed as 'k of n', then each one-sided test's p
    seed by seed, in the seeds column's order ('–' for a seed with nothing to test)."""
    if not by_seed:
        return ""
    runs = list(by_seed.values())
    counts = " / ".join(
        f"{sum(r[cases]['asked'] for r in runs)} of {sum(r[cases]['n'] for r in runs)}"
        for cases in ("clarify_cases", "call_tool_cases")
    )
    tests = []
    for key, label in ASKS_TESTS:
        ps = [r.get(key) for r in runs]
        if any(p is not None for p in ps):  # one entry per seed, in the seeds column's order; – where untestable
            tests.append(label + ", ".join("–" if p is None else f"{p:.2g}" for p in ps))
    return counts + (f" ({'; '.join(tests)})" if tests else "")


def _by_action(vs: dict[str, Any] | None) -> str:
    """McNemar p on the clarify cases alone, then on the call_tool cases alone ("" for the reference)."""
    by_action = (vs or {}).get("mcnemar_by_action")
    if not by_action:
        return ""
    return " / ".join(f"{by_action[a]['p']:.2g}" for a in ("clarify", "call_tool"))


def render_table(results: dict[str, Any]) -> str:
    """The ablation's markdown: question, split and seeds, then one row per arm."""
    cases = results["cases"]
    lines = [
        f"# Ablation: {results['name']}",
        "",
        *([results["question"].strip(), ""] if results["question"] else []),
        f"Split `{results['split']}` ({cases} cases per run, the same ids for every arm), seeds "
        f"{', '.join(map(str, results['seeds']))}: mean ± sd over seeds, "
        "then the Wilson 95% interval over every seed's cases pooled (n = cases x seeds). Paired McNemar against "
        f"`{results['reference']}` pools every case of the seeds both ran; Δ is the per-seed difference, mean ± sd. "
        "Asks: how many clarify and call_tool cases the arm answered with clarify (every seed's summed), and per "
        "seed a one-sided Fisher exact p that it asks more on the clarify cases than on the call_tool cases (an arm "
        "that only asks more often raises both alike), then the same within each case category (Mantel-Haenszel).",
        *(
            [
                "",
                f"**Partial**: {len(results['missing'])} run(s) not finished yet, left out: "
                + ", ".join(f"`{m['arm']}` seed {m['seed']}" for m in results["missing"])
                + ".",
            ]
            if results.get("missing")
            else []
        ),
        *([f"Cases per run: {_per_action(results)}.", ""] if _per_action(results) else []),
        "| arm | overrides | seeds | clarify | call_tool | answer_directly | escalate | refuse | overall "
        "| clarify→call_tool | asks on clarify / call_tool cases (p by seed) | Δ clarify | Δ call_tool "
        "| vs reference: lost / gained, McNemar p | McNemar p on clarify / call_tool cases | train s |",
        "| --- |" + " --- |" * 15,
    ]
    reference = results["arms"].get(results["reference"], {}).get("seeds", {})
    for arm, entry in results["arms"].items():
        m = entry["mean_sd"]
        vs = entry.get("vs_reference")
        p = vs["mcnemar_pooled"]["p"] if vs else None
        runs = len(entry["seeds"])
        paired = len(set(entry["seeds"]) & set(reference))
        cells = [
            arm,
            "; ".join(f"`{o}`" for o in entry["overrides"]) or "(the recipe)",
            ", ".join(entry["seeds"]),
            *(
                _cell(m.get(a), runs) + _interval(entry.get("pooled", {}).get(a))
                for a in ("clarify", "call_tool", "answer_directly", "escalate", "refuse", "overall")
            ),
            _share(entry.get("pooled", {}).get("clarify_to_call_tool")) or _cell(m.get("clarify_to_call_tool"), runs),
            _asks(entry.get("asks_where_it_should")),
            _cell(vs.get("clarify_diff"), paired) if vs else "reference",
            _cell(vs.get("call_tool_diff"), paired) if vs else "",
            "" if not vs else f"{vs['mcnemar_pooled']['b10']} / {vs['mcnemar_pooled']['b01']}, p = {p:.2g}",
            _by_action(vs),
            f"{entry['train_s']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    reused = [
        f"`{arm}` seed {seed} from `{run['sft_reused_from']}`"
        for arm, entry in results["arms"].items()
        for seed, run in entry["seeds"].items()
        if run.get("sft_reused_from")
    ]
    if reused:
        lines += [
            "",
            "SFT runs adopted, not retrained (same resolved config and data bytes): " + "; ".join(reused) + ".",
        ]
    steering = {arm: e["steering"] for arm, e in results["arms"].items() if e.get("steering")}
    for arm, cells in steering.items():
        lines += ["", f"Steering grid of `{arm}` (split `{cells[0]['split']}`; layer None = unsteered):", ""]
        lines += ["| layer | alpha | clarify | call_tool |", "| --- | --- | --- | --- |"]
        n = len(results["arms"][arm]["seeds"])
        lines += [
            f"| {c['layer']} | {c['alpha']:g} | {_cell(c['clarify'], n)} | {_cell(c['call_tool'], n)} |" for c in cells
        ]
    return "\n".join(lines) + "\n"


def plot_arms(results: dict[str, Any], path: Path) -> Path:
    """Per arm, clarify and call_tool accuracy: bars at the mean, sd whiskers, one dot per seed."""
    # lazy: matplotlib is needed only when a plot is drawn
    from matplotlib.figure import Figure

    names = list(results["arms"])
    fig = Figure(figsize=(max(5.0, 1.6 * len(names) + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.38
    for k, (metric, color) in enumerate((("clarify", "tab:green"), ("call_tool", "tab:blue"))):
        for i, arm in enumerate(names):
            entry = results["arms"][arm]
            pair = entry["mean_sd"].get(metric)
            if pair is None:
                continue
            x = i + (k - 0.5) * width
            ax.bar(x, pair[0], width, yerr=pair[1], color=color, alpha=0.6, capsize=3, label=metric if i == 0 else None)
            seeds = [s[metric] for s in entry["seeds"].values() if s.get(metric) is not None]
            ax.scatter([x] * len(seeds), seeds, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=15, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"accuracy (split {results['split']})")
    ax.set_title(f"{results['name']}: mean ± sd over seeds {results['seeds']}")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)
