"""The study's external stage: held-out sets from outside the benchmark, scored by their own rules.

- Each method in `external.methods` (sft, the steering chosen on mine, SimPO, SimPO + steering) generates on the
  imported When2Call file and the BFCL files, single turn, the same harness as the benchmark's eval; the verdicts
  are kept as `external_<method>` and scored by `evals.external_metrics` (When2Call macro F1, accuracy and
  tool-hallucination rate; BFCL accuracy per category).
- When2Call's own multiple-choice protocol (`evals.when2call_logprob`) for the base model (adapter off) and the SFT
  agent, so both sit beside the When2Call paper's table on its terms.

Nothing is chosen on these files: the steering setting and the SimPO adapter are the ones the study chose on mine.
"""

from __future__ import annotations

import json
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.evals.external_metrics import external_metrics
from toolprior.evals.when2call_logprob import when2call_logprob
from toolprior.experiments.study_run import AgentHost, steering_key
from toolprior.importers.bfcl import import_bfcl
from toolprior.importers.when2call import import_when2call
from toolprior.modeling import load_model, load_tokenizer
from toolprior.steering.apply import steering_factory


def external_cases(settings: Any) -> list[Any]:
    """The When2Call and BFCL cases the settings name, each file cut to its first `limit` cases."""
    groups = []
    if settings.when2call:
        groups.append(import_when2call(settings.when2call))
    groups.extend(import_bfcl(path) for path in settings.bfcl)
    return [case for group in groups for case in group[: settings.limit or len(group)]]


def _method_run(study: AgentHost, method: str, cases: list[Any]) -> dict[str, Any]:
    """Generate `method`'s verdicts on the external cases; {"skipped": why} when the study did not make it."""
    simpo = study.run / "simpo" / "adapter"
    adapter = simpo if method.startswith("simpo") else None
    if adapter is not None and not adapter.is_dir():
        return {"skipped": "the study trained no SimPO adapter"}
    steer, steering = None, None
    if method.endswith("steering"):
        chosen = study.chosen()
        if chosen is None:
            return {"skipped": "no steering setting met the call_tool floor on mine"}
        _, alpha, single, _ = study.chosen_vectors(chosen)
        model, tokenizer = study.agent(adapter)
        steer = steering_factory(model, single, alpha, positions=study.apply_positions(), tokenizer=tokenizer)
        steering = steering_key(single, alpha, study.apply_positions())
    run = study.evaluate(f"external_{method}", cases, steer=steer, adapter=adapter, steering=steering)
    verdicts = study.load_verdicts(f"external_{method}")
    return {"infer_s": run["infer_s"], "cpu_s": run.get("cpu_s"), "metrics": external_metrics(cases, verdicts)}


def stage_external(study: AgentHost) -> dict[str, Any]:
    """Score the external files for each method, and When2Call by log-probability for the base and SFT."""
    settings = study.config.external
    cases = external_cases(settings)
    out: dict[str, Any] = {"cases": len(cases), "chosen_on": "nothing (external files are held out)", "methods": {}}
    for method in settings.methods:
        out["methods"][method] = _method_run(study, method, cases)
    when2call = [c for c in cases if c.category == "when2call"]
    if settings.logprob and when2call:
        config = study.config
        base = load_model(config.base, quantize=config.quantize, dtype=config.dtype)
        tokenizer = load_tokenizer(config.base)
        sft, sft_tokenizer = study.agent()
        logprob = {
            "base": when2call_logprob(base, tokenizer, when2call),
            "sft": when2call_logprob(sft, sft_tokenizer, when2call),
        }
        out["when2call_logprob"] = {
            model: {protocol: {k: v for k, v in r.items() if k != "choices"} for protocol, r in result.items()}
            for model, result in logprob.items()
        }
        choices = {
            model: {protocol: r["choices"] for protocol, r in result.items()} for model, result in logprob.items()
        }
        path = study.run / "external" / "when2call_logprob_choices.json"
        atomic_write_text(path, json.dumps(choices, indent=1, ensure_ascii=False) + "\n")
        out["when2call_logprob_choices"] = str(path)
    return out
