"""The study's report: every method's verdicts on the same eval + eval_novel ids, with cost, the chosen steering
setting, the probe block, collateral damage, next-token KL on neutral prompts and per-split scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolprior.atomic import atomic_write_text
from toolprior.evals.forensics import annotate_think, hallucination_rate, mismatch_examples, mismatch_table
from toolprior.evals.report import render_markdown, write_eval_report
from toolprior.evals.scoring import score_by_split
from toolprior.experiments.comparison import collateral
from toolprior.experiments.study_summary import render_study_summary

if TYPE_CHECKING:
    from toolprior.experiments.study_run import StudyRun


def _shown(path: Any) -> str:
    """A config path as a reader can find it: relative to the working folder when it lies inside it (the demo's
    configs, resolved to absolute paths when loaded, would otherwise name the clone's folder)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def _stage(study: StudyRun, name: str) -> dict[str, Any]:
    path = study.run / "stages" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# the stage whose finish makes each method's held-out verdicts (others: eval_<method>)
METHOD_STAGE = {
    "sft": "eval_sft",
    "guardrail": "guardrail",
    "steering": "eval_steering",
    "conditional_steering": "eval_steering",
    "steering_random": "eval_steering",
    "simpo": "eval_simpo",
    "simpo_steering": "eval_simpo",
}
COSTED_METHODS = (*METHOD_STAGE, "dpo", "adv_sft")


def method_stage(method: str) -> str:
    """The stage that evaluates `method` on the held-out cases."""
    return METHOD_STAGE.get(method, f"eval_{method}")


def _evaluation_record(study: StudyRun, method: str) -> dict[str, Any]:
    """What the stage that evaluated `method` on the held-out cases kept of that evaluation (its seconds)."""
    record = _stage(study, method_stage(method))
    if method == "guardrail":  # the stage is the one evaluation
        return record
    return record.get("held_out" if method == "sft" else method, {})


def method_costs(study: StudyRun) -> dict[str, dict[str, Any]]:
    """Each method's training and inference seconds, and its inference cost against sft's on the same cases: from
    CPU seconds where both evaluations recorded them (a pause of the study does not count there), else from wall
    seconds (`overhead_from` says which)."""
    timings = {method: _evaluation_record(study, method) for method in COSTED_METHODS}
    simpo_train = _stage(study, "simpo").get("train_s", 0.0)
    train = {
        "sft": _stage(study, "sft").get("train_s"),
        "guardrail": 0.0,
        "steering": _stage(study, "steer_compute").get("seconds", 0.0)
        + _stage(study, "steer_sweep").get("seconds", 0.0),
        "simpo": simpo_train,
        "dpo": _stage(study, "dpo").get("train_s"),
        "adv_sft": _stage(study, "adv_sft").get("train_s"),
    }
    train["steering_random"] = train["steering"]
    train["conditional_steering"] = train["steering"]
    train["simpo_steering"] = (simpo_train or 0.0) + train["steering"]
    base = timings["sft"]
    out = {}
    for method, timing in timings.items():
        if timing.get("infer_s") is None:
            continue
        basis = "cpu_s" if timing.get("cpu_s") is not None and (base.get("cpu_s") or 0) > 0 else "infer_s"
        overhead = round(timing[basis] / base[basis], 3) if base.get(basis) else None
        out[method] = {
            "train_s": train.get(method),
            "infer_s": timing["infer_s"],
            "cpu_s": timing.get("cpu_s"),
            "infer_overhead": overhead,
            "overhead_from": "cpu" if basis == "cpu_s" else "wall",
        }
    return out


def method_forensics(cases: list[Any], verdicts: list[Any]) -> dict[str, Any]:
    """A method's `forensics` block from its verdicts (`think_argues` filled): invented argument values, the
    clearest think/action mismatches, and on the clarify cases what the think argued and whether a tool call
    followed (the case study's signature: 73 of 77 thinks that said ask, then a call)."""
    clarify = [v for v in verdicts if v.expected == "clarify"]
    return {
        "hallucination": hallucination_rate(cases, verdicts),
        "mismatch_examples": mismatch_examples(verdicts, k=5),
        "clarify_cases": {
            "n": len(clarify),
            "called_tool": sum(1 for v in clarify if v.predicted == "call_tool"),
            "think_argues": mismatch_table(clarify),
        },
    }


def write_study_report(study: StudyRun, unfinished: list[str] | None = None) -> dict[str, Any]:
    """Write report.json and report.md from what the run holds. `unfinished` names the stages not finished yet
    (an interim report, `toolprior study --report-only`): the report says so on its first page."""

    methods: dict[str, list[Any]] = {}
    for name in study.config.methods:
        stage = method_stage(name)
        # only what a finished stage made: a stage redone or left unfinished can leave older verdicts behind
        if stage in (unfinished or []) or "skipped" in _stage(study, stage):
            continue
        if study.verdicts_path(name).is_file():
            # what each think argues for (the rule judge, as `toolprior eval` does): the case study's signature is
            # a think that says ask followed by a tool call, and the report measures it for every method
            methods[name] = annotate_think(study.load_verdicts(name), cases=study.held_out)
    costs = method_costs(study)
    chosen = study.run / "steering" / "chosen.json"
    chosen_setting = json.loads(chosen.read_text()) if chosen.is_file() else None
    extras: dict[str, dict[str, Any]] = {}
    for name, verdicts in methods.items():
        extra: dict[str, Any] = {"cost": costs.get(name, {}), "by_split": score_by_split(verdicts)}
        extra["forensics"] = method_forensics(study.held_out, verdicts)
        if name in ("steering", "steering_random", "conditional_steering", "simpo_steering") and chosen_setting:
            extra.update({"layer": chosen_setting["layer"], "alpha": chosen_setting["alpha"], "chosen_on": "mine"})
        if name in ("simpo", "simpo_steering", "dpo", "adv_sft"):
            extra.update({"pairs": _stage(study, "pairs").get("pairs"), "pairs_from": "mine"})
            search = _stage(study, "simpo") if name == "simpo" else {}
            if search.get("chosen"):
                extra["chosen_on"] = (
                    f"{search['chosen_on']}: setting {search['chosen']!r} of {', '.join(search['settings'])} "
                    f"({search['rule']})"
                )
                extra["search"] = {k: search[k] for k in ("chosen", "rule", "sft_on_mine", "settings")}
            elif name != "simpo_steering":  # its setting is SimPO's and steering's, named above
                # the preference settings are the config's as written: no search ran, so nothing was chosen on eval
                extra["chosen_on"] = f"none (as written in {_shown(getattr(study.config, f'{name}_config'))})"
            trained = _stage(study, "simpo" if name == "simpo_steering" else name)
            extra["cost"] = {**extra["cost"], "steps": trained.get("steps")}
        if name == "conditional_steering":
            extra["threshold_chosen_on"] = "mine"
        extras[name] = extra
    # written whole each time: an interim report's `unfinished`, or a stage's block from before it was redone, must
    # not survive into the next report
    report = write_eval_report(study.run, study.held_out, methods, extras=extras, merge=False)
    if study.config.scope:
        report["scope"] = study.config.scope
    if unfinished:
        report["unfinished"] = unfinished
    sft_stage = _stage(study, "sft")
    if sft_stage.get("shipped_adapter"):
        report["sft_adapter"] = {k: sft_stage.get(k) for k in ("shipped_adapter", "config_hash", "commit", "steps")}
    report["collateral"] = {"reference": "sft", "split": "eval+eval_novel", "methods": collateral(report["methods"])}
    probe = study.run / "probe" / "probe_block.json"
    if probe.is_file():
        report["probe"] = json.loads(probe.read_text())
    sweep = _stage(study, "steer_sweep")
    if sweep:
        report["steering_selection"] = {"split": "mine", **sweep}
    external = _stage(study, "external")
    if external:
        report["external"] = {k: v for k, v in external.items() if k != "seconds"}
    kl = _stage(study, "kl")
    if kl:
        report["kl"] = {"reference": "sft", "split": "val", **{k: v for k, v in kl.items() if k != "seconds"}}
        # DPO's and adversarial SFT's KL come from the last stage, on the same texts
        report["kl"]["methods"] = {**kl.get("methods", {}), **_stage(study, "kl_baselines").get("methods", {})}
    atomic_write_text(study.run / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    details = render_markdown(report).replace("# toolprior evaluation", "## Detailed evaluation", 1)
    atomic_write_text(study.run / "report.md", render_study_summary(report, study.config.name) + "\n" + details)
    return report
