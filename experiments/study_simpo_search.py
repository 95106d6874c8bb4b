"""The study's SimPO search (`simpo_search` in a study config): each named setting (overrides on top of
`simpo_config` and `simpo_set`) trains SimPO on the mined pairs (all, or the subset a setting's `data.focus_*`
keeps) from the same SFT adapter, is scored on the same mine sample as the steering sweep, and the best is the
study's `simpo`. The rule is the steering sweep's: the most clarify among the settings that keep call_tool at sft's
level on those cases less 0.05; when none does, the best overall accuracy. The mine cases are where the pairs came
from (the agent's failures there), so the scores the choice reads are not held out; the held-out numbers come
after, on eval + eval_novel only."""

from __future__ import annotations

import shutil
from typing import Any, Protocol

from toolprior.config import load_config
from toolprior.experiments.study_run import EvaluatingHost
from toolprior.memory import release_memory
from toolprior.steering.sweep import MAX_CALL_TOOL_DROP, score_point
from toolprior.training import SimPORunConfig, train_simpo


class SearchHost(EvaluatingHost, Protocol):
    """What the search needs of the study that runs it (experiments.study.Study)."""

    def mine_for_sweep(self) -> list[Any]: ...


def _chosen(rows: dict[str, dict[str, Any]], floor: float | None) -> tuple[str, str]:
    """(the chosen setting's name, the rule that chose it)."""
    kept = {
        n: r
        for n, r in rows.items()
        if floor is None or r["call_tool_acc"] is None or r["call_tool_acc"] >= floor - 1e-12
    }
    if kept:
        name = max(
            kept, key=lambda n: (-1.0 if kept[n]["clarify_acc"] is None else kept[n]["clarify_acc"], kept[n]["overall"])
        )
        return name, "most clarify with call_tool kept"
    return max(rows, key=lambda n: rows[n]["overall"]), "no setting kept call_tool: best overall"


def stage_simpo_search(study: SearchHost) -> dict[str, Any]:
    """Train and score every SimPO setting of the search; the chosen one's adapter becomes simpo/adapter."""
    config = study.config
    mine = study.mine_for_sweep()
    wanted = {c.id for c in mine}
    baseline = [v for v in study.load_verdicts("sft_mine") if v.id in wanted]
    rows: dict[str, dict[str, Any]] = {}
    for name, extra in config.simpo_search.items():
        folder = study.run / "simpo_search" / name
        overrides = [*config.pair_overrides("simpo"), *config.simpo_set, *extra, f"output_dir={folder}"]
        result = train_simpo(load_config(SimPORunConfig, config.simpo_config, overrides=overrides))
        release_memory()  # the trainer and its model, before the agent loads for scoring
        scored = f"simpo_search_{name}_mine"
        # a resumed search keeps the scores it already has for the same adapter (`evaluate` keys them)
        study.evaluate(scored, mine, adapter=folder / "adapter")
        point = score_point(f"simpo:{name}", None, 0.0, study.load_verdicts(scored), baseline).to_dict(scores=False)
        rows[name] = {"overrides": list(extra), "train_s": round(result.train_seconds, 2), "steps": result.steps,
                      "pairs": result.pairs, **point}  # fmt: skip
    base = score_point("baseline", None, 0.0, baseline, baseline)
    floor = None if base.call_tool_acc is None else base.call_tool_acc - MAX_CALL_TOOL_DROP
    name, rule = _chosen(rows, floor)
    target = study.run / "simpo" / "adapter"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(study.run / "simpo_search" / name / "adapter", target)
    chosen = rows[name]
    return {
        "chosen": name,
        "rule": rule,
        "chosen_on": f"mine ({len(mine)} cases)",
        "sft_on_mine": {"clarify_acc": base.clarify_acc, "call_tool_acc": base.call_tool_acc, "floor": floor},
        "settings": rows,
        "train_s": chosen["train_s"],
        "steps": chosen["steps"],
        "pairs": chosen["pairs"],
    }
