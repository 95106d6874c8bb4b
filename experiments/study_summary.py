"""The first page of a study's report.md: what was compared, on which cases, what it cost, and what it showed.

The detailed evaluation tables (per category, confusions, paired tests of every method) follow it, written by
evals.report. Every table names the split its numbers come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TARGET_CLARIFY, FLOOR_CALL_TOOL, RANDOM_BAND = 0.70, 0.85, 0.10


def _acc(method: Mapping[str, Any], action: str) -> dict[str, Any] | None:
    return method.get("per_action", {}).get(action)


def _cell(block: Mapping[str, Any] | None) -> str:
    if not block or block.get("acc") is None:
        return "–"
    lo, hi = block.get("ci95") or [None, None]
    return f"{block['acc']:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None else f"{block['acc']:.2f}"


def _num(x: Any, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


# the tests of a method's `asks_where_it_should` block, as its table cells label them
ASKS_TESTS = (("p", "p = "), ("p_within_category", "within category "))


def asks_cell(method: Mapping[str, Any]) -> str:
    """'asked of n clarify cases / asked of n call_tool cases (p = ...; within category ...)': the one-sided p's that
    the first rate is higher, over all cases (Fisher) and within case category (Mantel-Haenszel)."""
    asks = method.get("asks_where_it_should")
    if not asks:
        return "–"
    c, t = asks["clarify_cases"], asks["call_tool_cases"]
    tests = [f"{label}{asks[key]:.2g}" for key, label in ASKS_TESTS if asks.get(key) is not None]
    return f"{c['asked']} of {c['n']} / {t['asked']} of {t['n']}" + (f" ({'; '.join(tests)})" if tests else "")


def asks_sentence(method: Mapping[str, Any]) -> str:
    """' It asks on k of n clarify cases and k of n call_tool cases (one-sided Fisher p = ...).', or ''."""
    asks = method.get("asks_where_it_should")
    if not asks:
        return ""
    c, t = asks["clarify_cases"], asks["call_tool_cases"]
    p = f" (one-sided Fisher p = {asks['p']:.2g} that it asks more on the first" if asks.get("p") is not None else ""
    if p and asks.get("p_within_category") is not None:
        p += f"; within case category, Mantel-Haenszel p = {asks['p_within_category']:.2g}"
    return f" It asks on {c['asked']} of {c['n']} clarify cases and {t['asked']} of {t['n']} call_tool cases{p}" + (
        ")." if p else "."
    )


def results_table(report: Mapping[str, Any]) -> list[str]:
    methods = report["methods"]
    paired = report.get("paired", {})
    collateral = report.get("collateral", {}).get("methods", {})
    kl = report.get("kl", {}).get("methods", {})
    lines = [
        "| method | clarify | call_tool | answer_directly | overall | asks on clarify / call_tool cases "
        "| vs sft: lost / gained, McNemar p | Δ call_tool | Δ answer_directly | KL on neutral text | train s "
        "| inference × sft |",
        "| --- |" + " --- |" * 11,
    ]
    for name, m in methods.items():
        test = paired.get(f"{name}_vs_sft")
        versus = "reference" if name == "sft" else "–"
        if test:
            n = report.get("eval", {}).get("n") or 0
            wrong = f" ({test['b10'] / n:.0%} moved the wrong way)" if n else ""
            versus = f"{test['b10']} / {test['b01']}{wrong}, p = {test['p']:.2g}"
        change = collateral.get(name, {})
        cost = m.get("cost", {})
        cells = [
            name,
            _cell(_acc(m, "clarify")),
            _cell(_acc(m, "call_tool")),
            _cell(_acc(m, "answer_directly")),
            _num(m.get("overall")),
            asks_cell(m),
            versus,
            _num(change.get("call_tool_change"), "+.2f"),
            _num(change.get("answer_directly_change"), "+.2f"),
            _num(kl.get(name), ".3f") if name != "sft" else "0",
            _num(cost.get("train_s"), ".0f"),
            _num(cost.get("infer_overhead")) + (" (wall)" if cost.get("overhead_from") == "wall" else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def findings(report: Mapping[str, Any]) -> list[str]:
    """Plain sentences on the questions the study asks, computed from the numbers (never hand-written)."""
    methods = report["methods"]
    sft = methods.get("sft", {})
    out = []

    def acc(name: str, action: str) -> float | None:
        block = _acc(methods.get(name, {}), action)
        return None if not block else block.get("acc")

    base_clarify = acc("sft", "clarify")
    for name in ("steering", "conditional_steering", "simpo", "simpo_steering", "dpo", "adv_sft"):
        if name not in methods:
            continue
        clarify, call = acc(name, "clarify"), acc(name, "call_tool")
        met = clarify is not None and call is not None and clarify >= TARGET_CLARIFY and call >= FLOOR_CALL_TOOL
        verdict = "reaches" if met else "does not reach"
        out.append(
            f"- **{name}** {verdict} the target (clarify >= {TARGET_CLARIFY:.2f} with call_tool >= "
            f"{FLOOR_CALL_TOOL:.2f}): clarify {_num(clarify)} (sft {_num(base_clarify)}), call_tool {_num(call)} "
            f"(sft {_num(acc('sft', 'call_tool'))})."
            + asks_sentence(methods[name])
            + (simpo_tried_on_mine(report) if not met and name.startswith("simpo") else "")
            + (tried_on_mine(report) if not met and "steering" in name else "")
        )
    if "steering_random" in methods and base_clarify is not None:
        random_clarify = acc("steering_random", "clarify")
        inside = random_clarify is not None and abs(random_clarify - base_clarify) <= RANDOM_BAND
        out.append(
            f"- The random direction of equal norm {'stays' if inside else 'does not stay'} within "
            f"{RANDOM_BAND:.2f} of sft on clarify ({_num(random_clarify)} vs {_num(base_clarify)})"
            + (
                "; with steering also at sft's level, the control cannot separate anything."
                if "steering" in methods and acc("steering", "clarify") == base_clarify
                else "."
            )
        )
    worst = _acc(sft, "clarify")
    if worst and worst.get("top_wrong"):
        out.append(
            f"- sft answers {worst.get('top_wrong_rate', 0):.0%} of clarify cases with `{worst['top_wrong']}`: the "
            "prior the study is about."
        )
    think = think_line(sft)
    if think:
        out.append(think)
    return out


def think_line(sft: Mapping[str, Any]) -> str | None:
    """Where sft's failures on the held-out clarify cases start, from its `forensics` block: in a think that says
    ask followed by a tool call (the case study's signature; its 73 of 77 are quoted for comparison), or in a think
    that argues for the tool itself; and how many of those tool calls hold an invented argument value."""
    forensics = sft.get("forensics") or {}
    cases = forensics.get("clarify_cases") or {}
    if not cases.get("n"):
        return None
    argues = cases.get("think_argues") or {}
    asked = argues.get("clarify") or {"n": 0, "k": 0}
    for_tool = (argues.get("call_tool") or {}).get("n", 0)
    named = sum(block["n"] for block in argues.values())
    line = (
        f"- On the {cases['n']} held-out clarify cases sft calls a tool in {cases['called_tool']}. Its think argues "
        f"for the tool call in {for_tool}, for asking in {asked['n']} (a tool call follows in {asked['k']} of them; "
        f"the case study: 73 of 77), for another action in {named - for_tool - asked['n']}, and for nothing the rule "
        f"judge can name in {cases['n'] - named}"
    )
    invented = ((forensics.get("hallucination") or {}).get("per_expected") or {}).get("clarify")
    if invented and invented.get("n"):
        line += (
            f"; {invented['k']} of its {invented['n']} tool-calling turns on these cases hold an argument value found "
            "nowhere in the conversation"
        )
    return line + "."


def tried_on_mine(report: Mapping[str, Any]) -> str:
    """What the steering search tried on mine, in one clause (for a method that missed)."""
    sel = report.get("steering_selection") or {}
    rows = sel.get("variants") or []
    if not rows:
        return ""
    top = max(rows, key=lambda r: r["most_clarify"].get("clarify_acc") or 0.0)
    best = top["most_clarify"]
    grid = ""
    if rows[0].get("layers") and rows[0].get("alphas"):  # summaries written before the grid was kept lack them
        layers = ", ".join(str(layer) for layer in rows[0]["layers"])
        alphas = ", ".join(f"{a:g}" for a in rows[0]["alphas"])
        grid = f" at blocks {layers} x alphas {alphas}"
    kinds = f"{len(rows)} variant{'s' if len(rows) > 1 else ''}"
    return (
        f" Tried on mine: {kinds}{grid} (see Steering selection); the most clarify any reached there was "
        f"{_num(best.get('clarify_acc'))} ({top['variant']}, layer {best.get('layer')}, alpha {best.get('alpha')}), "
        f"with call_tool {_num(best.get('call_tool_acc'))}."
    )


def simpo_tried_on_mine(report: Mapping[str, Any]) -> str:
    """What SimPO's search tried on mine, in one clause (for a SimPO method that missed): how many settings, the
    most clarify any reached and what it cost call_tool, and the setting the rule kept."""
    search = report.get("methods", {}).get("simpo", {}).get("search") or {}
    rows = search.get("settings") or {}
    if not rows:
        return ""
    top = max(rows, key=lambda n: rows[n].get("clarify_acc") or 0.0)
    chosen = rows.get(search.get("chosen"), {})
    return (
        f" SimPO tried on mine: {len(rows)} setting{'s' if len(rows) > 1 else ''} (see SimPO selection); the most "
        f"clarify any reached there was {_num(rows[top].get('clarify_acc'))} (`{top}`), with call_tool "
        f"{_num(rows[top].get('call_tool_acc'))}; the rule ({search.get('rule')}) kept `{search.get('chosen')}` "
        f"(clarify {_num(chosen.get('clarify_acc'))}, call_tool {_num(chosen.get('call_tool_acc'))} there)."
    )


def probe_lines(report: Mapping[str, Any]) -> list[str]:
    probe = report.get("probe")
    if not probe:
        return []
    best: Mapping[str, Any] = next(
        (row for row in probe.get("layers", []) if row.get("layer") == probe.get("best_layer")), {}
    )
    lines = [
        "## Where the prior lives (probe; split train)",
        "",
        f"A {probe.get('method')} probe for {probe.get('task')} at the `{probe.get('position')}` position, "
        f"{probe.get('n')} train cases, {probe.get('folds')} folds grouped by surface template "
        f"({probe.get('templates')} templates). Best layer {probe.get('best_layer')}: accuracy "
        f"{_num(best.get('acc'))} against a control task at {_num(best.get('control_acc'))} "
        f"(selectivity {_num(best.get('selectivity'))}), majority class {_num(probe.get('chance'))}; "
        f"the base model without the adapter reads {_num(best.get('base_acc'))} there.",
        "",
        "| layer | accuracy | control | selectivity | base model |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in probe.get("layers", []):
        lines.append(
            f"| {row['layer']} | {_num(row.get('acc'))} | {_num(row.get('control_acc'))} "
            f"| {_num(row.get('selectivity'))} | {_num(row.get('base_acc'))} |"
        )
    return [*lines, ""]


def steering_lines(report: Mapping[str, Any]) -> list[str]:
    sel = report.get("steering_selection")
    if not sel:
        return []
    base = sel.get("baseline", {})
    chosen = sel.get("chosen")
    lines = ["## Steering selection (split mine)", ""]
    lines.append(
        f"Unsteered on {base.get('n')} mine cases: clarify {_num(base.get('clarify_acc'))} "
        f"(n={base.get('clarify_n')}), call_tool {_num(base.get('call_tool_acc'))} (n={base.get('call_tool_n')}). "
        + (
            f"Chosen: layer {chosen['layer']}, alpha {chosen['alpha']:g}"
            + (f", variant {'-'.join(chosen['variant'].values())}" if chosen.get("variant") else "")
            + " (the best clarify with call_tool kept)."
            if chosen
            else "No setting kept call_tool above its floor; nothing was chosen."
        )
    )
    if sel.get("variants"):
        lines += [
            "",
            "| variant (method-source-read position-apply positions) | chosen: layer, alpha | clarify | call_tool "
            "| wrong / right way | most clarify: layer, alpha | clarify | call_tool |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in sel["variants"]:
            c, m = row.get("chosen") or {}, row["most_clarify"]
            picked = f"{c['layer']}, {c['alpha']:g}" if c else "none kept call_tool"
            moved = f"{_num(c.get('moved_wrong'))} / {_num(c.get('moved_right'))}" if c else "–"
            lines.append(
                f"| {row['variant']} | {picked} | {_num(c.get('clarify_acc'))} | {_num(c.get('call_tool_acc'))} "
                f"| {moved} | {m['layer']}, {m['alpha']:g} | {_num(m.get('clarify_acc'))} | {_num(m.get('call_tool_acc'))} |"
            )
    if sel.get("controls"):
        lines += ["", "| on mine | clarify | call_tool |", "| --- | --- | --- |"]
        lines += [f"| {c['label']} | {_num(c['clarify_acc'])} | {_num(c['call_tool_acc'])} |" for c in sel["controls"]]
    return [*lines, ""]


# When2Call paper (arXiv:2504.18851), its LLM-judge protocol: (model, macro F1 in %, tool hallucination).
WHEN2CALL_PUBLISHED: tuple[tuple[str, float, float], ...] = (
    ("Qwen2.5-3B-Instruct (published)", 29.8, 0.23),
    ("Llama-3.2-3B-Instruct (published)", 17.9, 0.52),
)


def external_lines(report: Mapping[str, Any]) -> list[str]:
    ext = report.get("external")
    if not ext:
        return []
    lines = [
        f"## External held-out sets ({ext.get('cases')} cases; nothing chosen on them)",
        "",
        "When2Call by its own metrics (macro F1 over its three labels, accuracy with Wilson 95%, the share of "
        "no-tool cannot_answer cases answered with a call); BFCL accuracy per file. The steering setting and the "
        "SimPO adapter are the ones chosen on mine.",
        "",
        "| method | When2Call F1 | When2Call accuracy | tool hallucination | BFCL irrelevance | BFCL live relevance |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, result in ext.get("methods", {}).items():
        if "skipped" in result:
            lines.append(f"| {method} | skipped: {result['skipped']} | | | | |")
            continue
        m = result["metrics"]
        w2c = m.get("when2call", {})
        f1 = w2c.get("macro_f1")
        lines.append(
            f"| {method} | {_num(None if f1 is None else 100 * f1, '.1f')} | {_cell(_ci(w2c, 'accuracy_ci95'))} "
            f"| {_num(w2c.get('tool_hallucination_rate'))} | {_cell(_ci(m.get('bfcl_irrelevance')))} "
            f"| {_cell(_ci(m.get('bfcl_live_relevance')))} |"
        )
    for name, f1, halluc in WHEN2CALL_PUBLISHED:
        lines.append(f"| {name} | {f1:.1f} | | {halluc:.2f} | | |")
    logprob = ext.get("when2call_logprob")
    if logprob:
        lines += [
            "",
            "When2Call's own multiple-choice protocol: each record's four candidate answers scored by mean "
            "log-probability per token, the most likely one taken (`answer_only`: right after the prompt, as in the "
            "paper; `own_think`: after the model's own greedy think).",
            "",
            "| model | protocol | F1 | accuracy | tool hallucination |",
            "| --- | --- | --- | --- | --- |",
        ]
        for model, protocols in logprob.items():
            for protocol, r in protocols.items():
                m = r["metrics"]
                lines.append(
                    f"| {model} | {protocol} | {_num(100 * m['macro_f1'], '.1f')} | {_cell(_ci(m, 'accuracy_ci95'))} "
                    f"| {_num(m.get('tool_hallucination_rate'))} |"
                )
    return [*lines, ""]


def _ci(block: Mapping[str, Any] | None, key: str = "ci95") -> dict[str, Any] | None:
    """An external metric block in the shape `_cell` reads ({"acc", "ci95"})."""
    if not block or block.get("accuracy") is None:
        return None
    return {"acc": block["accuracy"], "ci95": block.get(key)}


def simpo_search_lines(report: Mapping[str, Any]) -> list[str]:
    search = report.get("methods", {}).get("simpo", {}).get("search")
    if not search:
        return []
    base = search.get("sft_on_mine", {})
    lines = [
        "## SimPO selection (split mine)",
        "",
        f"Each setting trained on the same pairs and scored on the steering sweep's mine cases (where the pairs came "
        f"from, so not held out); sft there: clarify {_num(base.get('clarify_acc'))}, call_tool "
        f"{_num(base.get('call_tool_acc'))}. Chosen: `{search['chosen']}` ({search['rule']}).",
        "",
        "| setting | overrides | steps | clarify | call_tool | overall | wrong / right way |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in search.get("settings", {}).items():
        lines.append(
            f"| {name} | {', '.join(row.get('overrides', [])) or 'as written'} | {row.get('steps')} "
            f"| {_num(row.get('clarify_acc'))} | {_num(row.get('call_tool_acc'))} | {_num(row.get('overall'))} "
            f"| {_num(row.get('moved_wrong'))} / {_num(row.get('moved_right'))} |"
        )
    return [*lines, ""]


def render_study_summary(report: Mapping[str, Any], name: str) -> str:
    ev = report.get("eval", {})
    kl = report.get("kl", {})
    lines = [
        f"# Study `{name}`: steering vs SimPO on the same held-out cases",
        "",
        f"Every method is scored on the same {ev.get('n')} cases of split(s) {', '.join(ev.get('splits', []))} "
        f"(id set sha256 {ev.get('sha256', '')[:12]}). Nothing was trained or chosen on them: the probe and "
        "the steering vector come from train, the steering layer/alpha and the conditional threshold were chosen "
        "on mine, SimPO's pairs were mined from mine. Intervals are Wilson 95%; McNemar is paired on the same "
        "cases; Δ is the accuracy change against sft. Asks: the clarify and the call_tool cases answered with "
        "clarify, and a one-sided Fisher p that the clarify cases are asked more often (a method that only asks "
        "more often raises both alike), then the same within each case category (Mantel-Haenszel).",
        "",
        *([f"Scope: {report['scope']}", ""] if report.get("scope") else []),
        *(
            [f"**Interim report**: stages not finished yet: {', '.join(report['unfinished'])}.", ""]
            if report.get("unfinished")
            else []
        ),
        "## Findings",
        "",
        *findings(report),
        "",
        "## Results (split " + "+".join(ev.get("splits", [])) + ")",
        "",
        *results_table(report),
        "",
    ]
    if kl:
        lines += [
            f"KL(sft ‖ method) of next-token distributions on {kl.get('prompts')} neutral texts ({kl.get('source')}); "
            f"steering applied at {kl.get('positions')} positions there. Train s: SFT's training time for sft, the "
            "vector and its sweep for steering, the preference training for SimPO and its baselines.",
            "",
        ]
    lines += [*probe_lines(report), *steering_lines(report), *simpo_search_lines(report), *external_lines(report)]
    return "\n".join(lines) + "\n"
