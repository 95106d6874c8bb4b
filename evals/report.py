"""report.json / report.md / plots for one or several methods scored on the same cases (DESIGN.md contract).

`write_eval_report(out_dir, cases, methods)` merges into an existing report.json, so methods can be scored one
command at a time into the same folder; it refuses to mix methods scored on different case sets.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolprior.actions import ACTION_NAMES
from toolprior.atomic import atomic_write_text
from toolprior.cases import Case
from toolprior.errors import InputError, Problem
from toolprior.evals.plots import plot_confusion, plot_methods_per_action, plot_per_action, plot_per_category
from toolprior.evals.scoring import score
from toolprior.evals.statistics import mcnemar
from toolprior.verdict import Verdict, read_verdicts, write_verdicts


def eval_block(cases: Sequence[Case]) -> dict[str, Any]:
    """Identity of the scored case set: count, sha256 of the sorted ids, and the splits it covers."""
    ids = sorted(c.id for c in cases)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    return {"n": len(ids), "sha256": digest, "splits": sorted({c.split for c in cases})}


def paired_tests(methods: Mapping[str, Sequence[Verdict]], reference: str = "sft") -> dict[str, Any]:
    """McNemar on the same cases: every method against `reference`, labelled `<method>_vs_<reference>`."""
    out: dict[str, Any] = {}
    if reference not in methods:
        return out
    ref = {v.id: v.correct for v in methods[reference]}
    for name, verdicts in methods.items():
        if name == reference:
            continue
        ids = [v.id for v in verdicts if v.id in ref]
        mine = {v.id: v.correct for v in verdicts}
        out[f"{name}_vs_{reference}"] = mcnemar([ref[i] for i in ids], [mine[i] for i in ids])
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def _ci(block: Mapping[str, Any]) -> str:
    lo, hi = block["ci95"]
    return f"{block['acc']:.2f} [{lo:.2f}, {hi:.2f}]"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The tables a person reads first: per action, per category, confusion of each method."""
    ev = report["eval"]
    methods: Mapping[str, Mapping[str, Any]] = report["methods"]
    lines = [
        "# toolprior evaluation",
        "",
        f"Cases: {ev['n']} from split(s) {', '.join(ev['splits'])} (id set sha256 {ev['sha256'][:12]}). "
        "Accuracy is the decision (the action); tool names and arguments of call_tool predictions are scored apart (tool name ok, tool args ok). Intervals are Wilson 95%.",
        "",
        "## Overall",
        "",
        "| method | overall | macro over actions | tool name ok | tool args ok | unparsed | think/action mismatch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in methods.items():
        lines.append(
            f"| {name} | {_fmt(m['overall'])} | {_fmt(m['macro_action'])} | {_fmt(m.get('tool_name_accuracy'))} "
            f"| {_fmt(m.get('tool_accuracy'))} "
            f"| {_fmt(m.get('unparsed_rate'))} | {_fmt(m.get('think_action_mismatch'))} |"
        )
    lines += ["", "## Per expected action", ""]
    lines.append("| method | " + " | ".join(ACTION_NAMES) + " |")
    lines.append("| --- |" + " --- |" * len(ACTION_NAMES))
    for name, m in methods.items():
        cells = [
            (_ci(m["per_action"][a]) + f" (n={m['per_action'][a]['n']})") if a in m["per_action"] else "–"
            for a in ACTION_NAMES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Most common wrong action per expected action:", ""]
    for name, m in methods.items():
        wrong = [
            f"{a} -> {b['top_wrong']} ({b['top_wrong_rate']:.0%})"
            for a, b in m["per_action"].items()
            if b.get("top_wrong") is not None
        ]
        lines.append(f"- {name}: " + ("; ".join(wrong) if wrong else "none"))
    categories = list(next(iter(methods.values()))["per_category"]) if methods else []
    lines += ["", "## Per category", ""]
    lines.append("| category | n | " + " | ".join(methods) + " |")
    lines.append("| --- | --- |" + " --- |" * len(methods))
    for cat in categories:
        n = next(iter(methods.values()))["per_category"][cat]["n"]
        cells = [_ci(m["per_category"][cat]) if cat in m["per_category"] else "–" for m in methods.values()]
        lines.append(f"| {cat} | {n} | " + " | ".join(cells) + " |")
    lines += _forensics_markdown(methods)
    lines += _external_markdown(methods)
    paired = report.get("paired") or {}
    if paired:
        lines += [
            "",
            "## Paired tests (McNemar, same cases)",
            "",
            "| comparison | b01 | b10 | p | test |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, t in paired.items():
            lines.append(f"| {key} | {t['b01']} | {t['b10']} | {t['p']:.3g} | {t['test']} |")
    return "\n".join(lines) + "\n"


def write_eval_report(
    out_dir: str | os.PathLike[str],
    cases: Sequence[Case],
    methods: Mapping[str, Sequence[Verdict]],
    extras: Mapping[str, Mapping[str, Any]] | None = None,
    reference: str = "sft",
    merge: bool = True,
) -> dict[str, Any]:
    """Write verdicts/<method>.jsonl, report.json (merged with the methods and keys already there, unless `merge` is
    False: a caller that writes the whole report each time, as a study does, must not inherit stale keys), report.md
    and plots."""
    out = Path(out_dir)
    (out / "verdicts").mkdir(parents=True, exist_ok=True)
    block = eval_block(cases)
    report_path = out / "report.json"
    existing: dict[str, Any] = {}
    if report_path.is_file():
        existing = json.loads(report_path.read_text())
        if existing.get("eval", {}).get("sha256") not in (None, block["sha256"]):
            raise InputError(
                Problem(
                    str(report_path),
                    None,
                    "eval.sha256",
                    "this folder holds methods scored on other cases; use a new --out",
                )
            )
    for name, verdicts in methods.items():
        write_verdicts(out / "verdicts" / f"{name}.jsonl", verdicts)
    if merge:
        all_verdicts = {p.stem: read_verdicts(p) for p in sorted((out / "verdicts").glob("*.jsonl"))}
    else:  # the methods given are the whole report: what an earlier report left (keys, verdicts) is not taken
        all_verdicts = {name: list(verdicts) for name, verdicts in methods.items()}
        existing = {}
    report: dict[str, Any] = {"eval": block, "methods": dict(existing.get("methods", {}))}
    for name, verdicts in methods.items():
        entry = score(verdicts)
        entry.update((extras or {}).get(name, {}))
        report["methods"][name] = entry
    report["paired"] = paired_tests(all_verdicts, reference=reference)
    for key, value in existing.items():
        report.setdefault(key, value)
    atomic_write_text(report_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "report.md", render_markdown(report))
    plots = out / "plots"
    for name in methods:
        m = report["methods"][name]
        plot_per_action(m, plots / f"{name}_per_action.png", title=f"{name}: accuracy per expected action")
        plot_per_category(m, plots / f"{name}_per_category.png", title=f"{name}: accuracy per category")
        plot_confusion(m, plots / f"{name}_confusion.png", title=f"{name}: expected vs predicted action")
    if len(report["methods"]) > 1:
        plot_methods_per_action(report["methods"], plots / "methods_per_action.png")
    return report


def _forensics_markdown(methods: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The forensics block of each method that has one (`toolprior eval` writes it): invented argument values,
    think-block interventions, and the clearest think/action mismatches."""
    lines: list[str] = []
    for name, m in methods.items():
        f = m.get("forensics")
        if not f:
            continue
        lines += ["", f"## Forensics: {name}", ""]
        h = f.get("hallucination") or {}
        if h and not h.get("n"):
            lines.append("- Invented argument values: no turn called a tool with a decoded call.")
        elif h:
            lines.append(
                f"- Invented argument values: {h['k']} of {h['n']} tool-calling turns ({_fmt(h['rate'])}, "
                f"95% [{h['ci95'][0]:.2f}, {h['ci95'][1]:.2f}])."
            )
        for kind, block in (f.get("faithfulness") or {}).items():
            if isinstance(block, Mapping) and block.get("n") and "k_changed" in block:
                lines.append(
                    f"- Think intervention `{kind}`: the action changed in {block['k_changed']} of {block['n']}."
                )
        examples = f.get("mismatch_examples") or []
        if examples:
            lines += ["", "Think argues for another action, the turn calls a tool:", ""]
            for ex in examples:
                lines.append(
                    f'- `{ex["id"]}` (expected {ex["expected"]}): think argues {ex["think_argues"]}: "{ex["conclusion"]}"'
                )
    return lines


def _external_markdown(methods: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """When2Call / BFCL numbers of each method scored on imported cases (`external` block), one line per benchmark."""
    lines: list[str] = []
    for name, m in methods.items():
        external = m.get("external") or {}
        if external:
            lines += ["", f"## External benchmarks: {name}", ""]
        for group, block in external.items():
            shown = {k: v for k, v in block.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            lines.append(f"- External `{group}`: " + ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items()))
    return lines
