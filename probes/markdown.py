"""report.md of a probe experiment: the layer curves, the logit lens and the patching comparison, in words a reader
can check against summary.json (every figure here is read from it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _curve_lines(name: str, block: Mapping[str, Any]) -> list[str]:
    rows = block.get("layers") or []
    best = next((r for r in rows if r["layer"] == block.get("best_layer")), None)
    lines = [
        f"### {block['task']} / {block['method']} at {block['position']}",
        "",
        f"{block['n']} cases, {block['templates']} surface templates, {block['folds']} folds grouped by template "
        f"(no template on both sides of a fold); majority class {_f(block.get('chance'))}. "
        f"Curve file: curves/{name}.json.",
        "",
        "| layer | acc (held-out templates) | control acc | selectivity | AUROC | base-model acc |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        mark = " **best**" if best is not None and r["layer"] == best["layer"] else ""
        lines.append(
            f"| {r['layer']}{mark} | {_f(r.get('acc'))} ± {_f(r.get('acc_std'))} | {_f(r.get('control_acc'))} | "
            f"{_f(r.get('selectivity'))} | {_f(r.get('auroc'))} | {_f(r.get('base_acc'))} |"
        )
    if best is not None and best.get("base_acc") is not None:
        gain = best["acc"] - best["base_acc"]
        lines += [
            "",
            f"At the best layer the agent beats the base model (adapter off) by {gain:+.3f}: "
            + (
                "most of what the probe reads is already there before fine-tuning (at `decision` the gold think "
                "block is in the input and says which action fits)."
                if gain < 0.05
                else "fine-tuning added information the base did not hold."
            ),
        ]
    return [*lines, ""]


def _lens_lines(lens: Mapping[str, Any]) -> list[str]:
    final = lens.get("final_gap_per_action") or {}
    counts = lens.get("n_per_action") or {}
    lines = [
        "## Logit lens",
        "",
        f"Metric: {lens.get('metric')} at `{lens.get('position')}`, per layer (plots/logit_lens.png). "
        "Positive = the model leans to `<tool_call>` over the right tag.",
        "",
        "| gold action | cases | gap at the last layer |",
        "| --- | --- | --- |",
    ]
    for action, gap in final.items():
        lines.append(f"| {action} | {counts.get(action, 'n/a')} | {_f(gap)} |")
    return [*lines, ""]


def _patching_lines(patching: Mapping[str, Any]) -> list[str]:
    lines = ["## Activation patching on twins", ""]
    if not patching.get("pairs"):
        return [*lines, f"Skipped: {patching.get('skipped', 'no twin pairs')}.", ""]
    lines += [
        f"{patching['pairs']} twin pairs (clarify case = clean, its call_tool twin = corrupted) at "
        f"`{patching.get('position')}`, last {patching.get('k')} positions; metric logit(`<clarify>`) - "
        f"logit(`<tool_call>`) at the last token. Mean clean {_f(patching.get('clean_mean'))}, mean corrupted "
        f"{_f(patching.get('corrupted_mean'))} (patching.json has every map; plots/patching_*.png).",
        "",
    ]
    for key, label in (("comparison_resid", "residual stream, layer x position"), ("comparison_heads", "heads")):
        comparison = patching.get(key)
        if not comparison:
            continue
        lines.append(f"**Exact vs attribution patching ({label})**")
        lines.append("")
        for direction in ("denoise", "noise"):
            block = comparison.get(direction)
            if block:
                lines.append(
                    f"- {direction}: top-{comparison['top']} layers exact {block['exact_layer_ranking'][:3]}, "
                    f"attribution {block['attribution_layer_ranking'][:3]} "
                    f"({'agree' if block['top_layers_agree'] else 'differ'}); Spearman over cells "
                    f"{_f(block.get('spearman'), 2)}"
                )
        lines += ["", f"Why: {comparison.get('note', '')}", ""]
    return lines


def render_probe_markdown(summary: Mapping[str, Any]) -> str:
    """The probe experiment's report.md from its summary dict (as written to summary.json)."""
    model = summary.get("model", {})
    cases = summary.get("cases", {})
    lines = [
        "# Probe report",
        "",
        f"Model: `{model.get('path')}`"
        + (f" + adapter `{model.get('adapter')}`" if model.get("adapter") else "")
        + (f" ({model.get('quantize')})" if model.get("quantize") else "")
        + f". Cases: {cases.get('n')} from splits {cases.get('splits')} (never eval). "
        f"Baseline: {summary.get('baseline', 'none')}.",
        "",
        "## Layer curves",
        "",
    ]
    block = summary.get("probe")
    if block:
        best = next((r for r in block["layers"] if r["layer"] == block.get("best_layer")), None)
        if best is not None:
            lines += [
                f"Reported ({block['task']}, {block['method']}, `{block['position']}`): best layer "
                f"{block['best_layer']}, accuracy {_f(best['acc'])} on held-out templates, control "
                f"{_f(best['control_acc'])}, selectivity {_f(best['selectivity'])}; majority class "
                f"{_f(block.get('chance'))}.",
                "",
            ]
    for name, curve in (summary.get("curves") or {}).items():
        lines += _curve_lines(name, curve)
    if summary.get("logit_lens"):
        lines += _lens_lines(summary["logit_lens"])
    if summary.get("patching"):
        lines += _patching_lines(summary["patching"])
    return "\n".join(lines).rstrip() + "\n"
