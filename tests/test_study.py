"""The whole study end to end on a tiny world (random-weight Qwen3, tiny tokenizer, a few dozen cases): every
stage runs, the report holds the contract's keys, and a rerun skips finished stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_tiny_qwen3
from toolprior.config import load_config
from toolprior.experiments.study import run_study
from toolprior.experiments.study_config import StudyConfig
from toolprior.steering.vector import SteeringVector

pytestmark = pytest.mark.slow

EXTERNAL = Path(__file__).resolve().parents[1] / "experiments" / "external"  # copied with their licences


def test_study_runs_every_stage_and_resumes(tmp_path, tiny_tokenizer):
    base = tmp_path / "base"
    make_tiny_qwen3(tiny_tokenizer, seed=0, layers=2).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    overrides = [
        "name=tiny",
        f"out_dir={tmp_path / 'runs'}",
        f"base={base}",
        "data.train_size=40",
        "data.val_size=8",
        "data.mine_size=40",
        "data.eval_per_category=1",
        "data.eval_novel_per_category=1",
        "eval.max_new_tokens=24",
        "probe.max_cases=40",
        "probe.patching_pairs=2",
        "steering.alphas=[4.0]",
        "steering.mine_cases=20",
        "sft_set=[training.max_steps=2, training.max_length=4096, lora.r=4, training.eval_steps=2, training.save_steps=2]",
        "simpo_set=[training.max_steps=1, training.max_length=4096]",
        "dpo_set=[training.max_steps=1, training.max_length=4096]",
        "adv_sft_set=[training.max_steps=1, training.max_length=4096]",
    ]
    overrides += [  # the real When2Call and BFCL files, three cases of each
        f"external.when2call={EXTERNAL / 'when2call' / 'when2call_test_llm_judge.jsonl'}",
        f"external.bfcl=[{EXTERNAL / 'bfcl' / 'BFCL_v4_irrelevance.json'}, {EXTERNAL / 'bfcl' / 'BFCL_v4_live_relevance.json'}]",
        "external.limit=3",
        "external.methods=[sft, steering, simpo]",
        # three ways to make and apply the vector, searched together on mine
        "steering.variants=[mean_diff/classes/decision/from_decision, probe/classes/decision/from_decision, "
        "pca_paired/twins/prompt_end/generated]",
        "steering.variant_scale=decision_mean_diff",  # one scale for all three, so one alpha grid fits them
        # two SimPO settings, chosen on mine
        "simpo_search={as_written: [], low_beta: [preference.beta=0.1]}",
    ]
    config = load_config(StudyConfig, "experiments/configs/study_tiny.yaml", overrides=overrides)
    report = run_study(config, progress=False)
    run = tmp_path / "runs" / "tiny"
    assert {"eval", "methods", "paired"} <= set(report)
    assert "sft" in report["methods"] and (run / "verdicts" / "sft.jsonl").is_file()
    assert report["eval"]["splits"] == ["eval", "eval_novel"]
    assert (run / "report.md").is_file() and (run / "config.yaml").is_file()
    stages = {p.stem for p in (run / "stages").glob("*.json")}
    assert {"data", "sft", "eval_sft", "probe", "guardrail", "steer_compute", "steer_sweep", "pairs", "simpo"} <= stages
    assert {"sft", "guardrail", "simpo", "dpo", "adv_sft"} <= set(report["methods"])
    assert {"dpo", "eval_dpo", "adv_sft", "eval_adv_sft"} <= stages
    same_ids = {name: [v["id"] for v in map(json.loads, (run / "verdicts" / f"{name}.jsonl").open())] for name in
                ("sft", "simpo", "dpo", "adv_sft")}  # fmt: skip
    assert same_ids["dpo"] == same_ids["adv_sft"] == same_ids["simpo"] == same_ids["sft"]
    assert report["methods"]["simpo"]["pairs_from"] == "mine" and report["methods"]["sft"]["cost"]["train_s"] > 0
    assert report["methods"]["simpo"]["cost"]["steps"] == 1 and report["methods"]["dpo"]["cost"]["steps"] == 1
    # inference cost from CPU seconds, which a paused study does not inflate, when sft's and the method's both exist
    costs = report["methods"]
    assert costs["sft"]["cost"]["cpu_s"] > 0 and costs["simpo"]["cost"]["overhead_from"] == "cpu"
    # not searched: named as written, by the path a reader of this checkout finds it at
    assert report["methods"]["dpo"]["chosen_on"].startswith("none (as written in experiments/configs/")
    assert "probe" in report and report["probe"]["position"] == "decision"
    ext = report["external"]
    assert ext["cases"] == 9 and set(ext["methods"]) == {"sft", "steering", "simpo"}
    for method in ("sft", "simpo"):
        metrics = ext["methods"][method]["metrics"]
        assert set(metrics) == {"when2call", "bfcl_irrelevance", "bfcl_live_relevance"}
        assert metrics["when2call"]["n"] == 3 and metrics["bfcl_irrelevance"]["n"] == 3
    assert set(ext["when2call_logprob"]) == {"base", "sft"}
    assert set(ext["when2call_logprob"]["sft"]) == {"answer_only", "own_think"}
    assert ext["when2call_logprob"]["base"]["answer_only"]["metrics"]["n"] == 3
    assert "External held-out sets" in (run / "report.md").read_text()
    variants = report["steering_selection"]["variants"]
    assert [row["variant"] for row in variants] == [
        "mean_diff-classes-decision-from_decision",
        "probe-classes-decision-from_decision",
        "pca_paired-twins-prompt_end-generated",
    ]
    for row in variants:
        assert (run / "steering" / "variants" / f"{row['variant']}.safetensors").is_file()
        assert (run / "steering" / "variants" / f"sweep_{row['variant']}.json").is_file()
    norms = [
        SteeringVector.load(run / "steering" / "variants" / f"{r['variant']}.safetensors").norms() for r in variants
    ]
    assert all(n == pytest.approx(norms[0], rel=1e-3) for n in norms)  # the decision point's class-mean difference
    chosen = json.loads((run / "steering" / "chosen.json").read_text())
    if chosen is not None:  # the downstream stages apply the chosen variant's vector where it says
        assert chosen["apply_positions"] == chosen["variant"]["apply"]
        name = "-".join(chosen["variant"].values())
        picked = (run / "steering" / "variants" / f"{name}.safetensors").read_bytes()
        assert (run / "steering" / "vector.safetensors").read_bytes() == picked
        # the controls' "vector" point is the chosen setting's point of its sweep, not a second run of it
        swept = json.loads((run / "steering" / "sweep.json").read_text())["points"]
        point = next(
            p
            for p in swept
            if p["label"] == "vector" and (p["layer"], p["alpha"]) == (chosen["layer"], chosen["alpha"])
        )
        assert json.loads((run / "steering" / "controls.json").read_text())["points"][0] == point
    search = report["methods"]["simpo"]["search"]
    assert set(search["settings"]) == {"as_written", "low_beta"} and search["chosen"] in search["settings"]
    assert report["methods"]["simpo"]["chosen_on"].startswith("mine (")
    picked = run / "simpo_search" / search["chosen"] / "adapter" / "adapter_model.safetensors"
    assert (run / "simpo" / "adapter" / "adapter_model.safetensors").read_bytes() == picked.read_bytes()
    assert "SimPO selection (split mine)" in (run / "report.md").read_text()
    # a sweep stage cut after its variants' sweeps were written redoes none of them
    sweeps = {p: p.stat().st_mtime for p in (run / "steering" / "variants").glob("sweep_*.json")}
    summary = json.loads((run / "stages" / "steer_sweep.json").read_text())
    (run / "stages" / "steer_sweep.json").unlink()
    run_study(config, progress=False)
    assert {p: p.stat().st_mtime for p in sweeps} == sweeps
    again = json.loads((run / "stages" / "steer_sweep.json").read_text())
    assert again["variants"] == summary["variants"] and again["chosen"] == summary["chosen"]
    before = {p.name: p.stat().st_mtime for p in (run / "stages").glob("*.json")}
    run_study(config, progress=False)  # everything cached: no stage runs again
    after = {p.name: p.stat().st_mtime for p in (run / "stages").glob("*.json")}
    assert before == after
    json.loads((run / "report.json").read_text())
    # an interim report while stages are left: it runs none of them and names them on its first page
    compared_kl = report["kl"]["methods"]
    assert {"steering", "simpo", "dpo", "adv_sft"} <= set(compared_kl)
    for name in ("eval_adv_sft", "kl_baselines"):
        (run / "stages" / f"{name}.json").unlink()
    interim = run_study(config, progress=False, report_only=True)
    assert interim["unfinished"] == ["eval_adv_sft", "kl_baselines"]
    # the compared methods' KL stage ran before DPO: its numbers are in the interim report, the baselines' are not
    assert interim["kl"]["methods"] == {k: v for k, v in compared_kl.items() if k not in ("dpo", "adv_sft")}
    assert not (run / "stages" / "kl_baselines.json").exists() and not (run / "stages" / "eval_adv_sft.json").exists()
    assert "**Interim report**: stages not finished yet: eval_adv_sft, kl_baselines." in (run / "report.md").read_text()
    assert interim["methods"]["simpo"]["per_action"] == report["methods"]["simpo"]["per_action"]
    # adversarial SFT's verdicts are on disk, but its eval stage has not finished: they are not reported or paired
    assert "adv_sft" not in interim["methods"] and "adv_sft_vs_sft" not in interim["paired"]
    (run / "stages" / "eval_adv_sft.json").write_text("{}")  # as if it had finished: the next report is whole again
    (run / "stages" / "kl_baselines.json").write_text(json.dumps({"methods": {"adv_sft": 0.5}}))
    final = run_study(config, progress=False)
    assert "unfinished" not in final and final["kl"]["methods"] == {**interim["kl"]["methods"], "adv_sft": 0.5}
    assert "adv_sft" in final["methods"] and "adv_sft_vs_sft" in final["paired"]
