"""`toolprior ablate` on a tiny world: arms x seeds scored on the same ids, mean ± sd, paired tests against the
first arm, shared runs between ablations, resume, and one clear line for a bad arm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_tiny_qwen3
from toolprior.config import load_config
from toolprior.experiments.ablate import run_ablation
from toolprior.experiments.ablate_config import AblationConfig

TINY_SFT = [
    "training.max_steps=2",
    "training.max_length=4096",
    "lora.r=4",
    "training.eval_steps=2",
    "training.save_steps=2",
    "data.max_val_cases=4",
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tiny_tokenizer):
    base = tmp_path_factory.mktemp("ablate_base")
    make_tiny_qwen3(tiny_tokenizer, seed=0, layers=2).save_pretrained(base)
    tiny_tokenizer.save_pretrained(base)
    return base


def _config(tmp_path, base, name, arms, extra=()):
    """A config from a file without arms of its own (a --set of `arms` merges into the file's mapping)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nsft_config: experiments/configs/sft_organism.yaml\n")
    overrides = [
        f"name={name}",
        f"out_dir={tmp_path / 'ablate'}",
        f"base={base}",
        "quantize=none",
        "data.train_size=40",
        "data.val_size=8",
        "data.mine_size=10",
        "data.eval_per_category=1",
        "data.eval_novel_per_category=1",
        "eval.max_new_tokens=16",
        "seeds=[0, 1]",
        f"sft_set={json.dumps(TINY_SFT)}",
        f"arms={json.dumps(arms)}",
        *extra,
    ]
    return load_config(AblationConfig, path, overrides=overrides)


def test_arms_by_seeds_on_the_same_cases_with_paired_tests_and_shared_runs(tmp_path, tiny_base):
    arms = {"recipe": [], "no_neftune": ["training.neftune_noise_alpha=null"]}
    config = _config(tmp_path, tiny_base, "h1", arms, ["grid={lora.alpha: [8]}"])
    results = run_ablation(config, progress=False)
    run = tmp_path / "ablate" / "h1"
    assert list(results["arms"]) == ["recipe", "no_neftune", "lora.alpha=8"]
    ids = {}
    for arm, entry in results["arms"].items():
        assert set(entry["seeds"]) == {"0", "1"}
        mean, sd = entry["mean_sd"]["overall"]
        overall = [s["overall"] for s in entry["seeds"].values()]
        assert mean == pytest.approx(sum(overall) / 2, abs=1e-4) and sd >= 0
        for seed in entry["seeds"].values():
            verdicts = tmp_path / "ablate" / "units" / seed["unit"] / "verdicts.jsonl"
            ids[(arm, seed["unit"])] = [json.loads(line)["id"] for line in verdicts.open()]
    assert len({tuple(v) for v in ids.values()}) == 1  # every run scored the very same cases
    assert len({unit for _, unit in ids}) == 6  # 3 arms x 2 seeds, each its own run
    vs = results["arms"]["no_neftune"]["vs_reference"]
    assert vs["reference"] == "recipe" and vs["mcnemar_pooled"]["n"] == 2 * results["cases"]
    pooled = results["arms"]["recipe"]["pooled"]  # every seed's cases, pooled: 2 seeds x the same cases
    assert pooled["overall"]["n"] == 2 * results["cases"]
    assert (
        sum(c["n"] for a, c in pooled.items() if a not in ("overall", "clarify_to_call_tool")) == 2 * results["cases"]
    )
    lo, hi = pooled["overall"]["ci95"]
    assert lo <= results["arms"]["recipe"]["mean_sd"]["overall"][0] <= hi
    table = (run / "table.md").read_text()
    assert "Split `eval`" in table and "| no_neftune |" in table and "reference" in table
    assert "Cases per run: " in table and f"[{lo:.3f}, {hi:.3f}]" in table
    assert f"| {vs['mcnemar_pooled']['b10']} / {vs['mcnemar_pooled']['b01']}, p = " in table  # lost / gained
    by_action = vs["mcnemar_by_action"]  # the clarify and call_tool cases on their own, both seeds paired
    assert by_action["clarify"]["n"] == pooled.get("clarify", {}).get("n", 0)
    assert by_action["call_tool"]["n"] == pooled.get("call_tool", {}).get("n", 0)
    asks = results["arms"]["recipe"]["asks_where_it_should"]  # per seed, each over that seed's cases
    assert set(asks) == {"0", "1"}
    assert sum(a["clarify_cases"]["n"] for a in asks.values()) == pooled.get("clarify", {}).get("n", 0)
    assert sum(a["call_tool_cases"]["n"] for a in asks.values()) == pooled.get("call_tool", {}).get("n", 0)
    assert "asks on clarify / call_tool cases" in table
    assert (run / "plots" / "arms.png").stat().st_size > 0

    stamps = {p: p.stat().st_mtime for p in (tmp_path / "ablate" / "units").rglob("stages/*.json")}
    # a second ablation sharing the recipe arm reuses its runs; a rerun trains nothing
    other = _config(tmp_path, tiny_base, "h2", {"recipe": [], "full_loss": ["training.assistant_only_loss=false"]})
    run_ablation(other, progress=False)
    run_ablation(config, progress=False)
    assert all(p.stat().st_mtime == t for p, t in stamps.items())
    assert len(list((tmp_path / "ablate" / "units").glob("*/unit.json"))) == 8


def test_an_action_mix_arm_trains_on_its_own_benchmark_and_is_scored_on_the_reference_cases(tmp_path, tiny_base):
    mix = "bench.train_mix=call_tool=30,clarify=28,answer_directly=17,escalate=13,refuse=12"
    arms = {"recipe": [], "rebalanced": [mix]}
    steering = ["steering.layers=[0, 1]", "steering.alphas=[2.0]", "steering.max_cases=6"]
    config = _config(tmp_path, tiny_base, "mix", arms, ["seeds=[0]", *steering])
    results = run_ablation(config, progress=False)
    grid = results["arms"]["rebalanced"]["steering"]  # the steering axis: unsteered + layer x alpha, on mine
    assert {(c["layer"], c["alpha"]) for c in grid} == {(None, 0.0), (0, 2.0), (1, 2.0)}
    assert all(c["split"] == "mine" for c in grid)
    assert "Steering grid of `rebalanced` (split `mine`" in (tmp_path / "ablate" / "mix" / "table.md").read_text()
    assert len(list((tmp_path / "ablate" / "data").glob("*/train.jsonl"))) == 2
    units = [results["arms"][a]["seeds"]["0"]["unit"] for a in arms]
    read = [[json.loads(x)["id"] for x in (tmp_path / "ablate" / "units" / u / "verdicts.jsonl").open()] for u in units]
    assert read[0] == read[1]


def test_pooled_counts_give_each_action_its_wilson_interval_and_count_clarify_answered_with_call_tool():
    from scipy.stats import binomtest

    from toolprior.experiments.ablate import pooled_counts
    from toolprior.verdict import Verdict

    def verdict(i: int, expected: str, predicted: str | None) -> Verdict:
        return Verdict(f"c{i}", "x", "eval", expected, [expected], predicted, predicted == expected)

    rows = [verdict(i, "clarify", "call_tool" if i < 7 else "clarify") for i in range(9)]
    rows += [verdict(10 + i, "call_tool", "call_tool" if i < 20 else None) for i in range(23)]
    pooled = pooled_counts(rows)
    assert (pooled["clarify"]["n"], pooled["clarify"]["acc"]) == (9, round(2 / 9, 4))
    assert (pooled["call_tool"]["n"], pooled["call_tool"]["acc"]) == (23, round(20 / 23, 4))
    assert (pooled["overall"]["n"], pooled["overall"]["acc"]) == (32, round(22 / 32, 4))
    assert pooled["clarify_to_call_tool"] == {"count": 7, "total": 9}
    assert "refuse" not in pooled  # no case of that action: no interval made up for it
    for action, (k, n) in {"clarify": (2, 9), "call_tool": (20, 23), "overall": (22, 32)}.items():
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert pooled[action]["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-4)


def test_the_asks_cell_pools_the_seeds_counts_and_lists_each_seeds_p():
    from toolprior.experiments.ablate_table import _asks

    def seed(asked: tuple[int, int], p: float | None) -> dict:
        return {"clarify_cases": {"asked": asked[0], "n": 12}, "call_tool_cases": {"asked": asked[1], "n": 30}, "p": p}

    assert _asks({"0": seed((9, 3), 0.00012), "1": seed((6, 15), 0.62)}) == "15 of 24 / 18 of 60 (p = 0.00012, 0.62)"
    within = {"0": seed((9, 3), 0.00012) | {"p_within_category": 0.41}, "1": seed((6, 15), 0.62)}
    assert _asks(within) == "15 of 24 / 18 of 60 (p = 0.00012, 0.62; within category 0.41, –)"  # by seed
    assert _asks({"0": seed((0, 0), None)}) == "0 of 12 / 0 of 30"  # never asks: nothing to test


def test_arms_come_from_the_list_then_the_grid():
    from toolprior.experiments.ablate import arms

    config = AblationConfig(arms={"recipe": []})
    assert arms(config) == {"recipe": []}  # no grid: no extra arm
    config.grid = {"lora.r": [8, 16], "training.neftune_noise_alpha": [None]}
    assert list(arms(config)) == [
        "recipe",
        "lora.r=8, training.neftune_noise_alpha=null",
        "lora.r=16, training.neftune_noise_alpha=null",
    ]


def test_a_bad_arm_is_one_line_and_exit_2(tmp_path, tiny_base, capsys):
    from toolprior.cli import main

    config = tmp_path / "bad.yaml"
    config.write_text(f"name: bad\nout_dir: {tmp_path}\nbase: {tiny_base}\narms:\n  recipe: [bench.nonsense=1]\n")
    assert main(["ablate", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonsense" in err[0]


def test_the_clarify_arc_trains_the_resolved_second_turn():
    import tempfile
    from pathlib import Path

    from toolprior.actions import Action
    from toolprior.case_io import read_cases
    from toolprior.training.benchmark import BenchmarkConfig, write_benchmark
    from toolprior.training.sft import case_row

    with tempfile.TemporaryDirectory() as tmp:
        write_benchmark(Path(tmp), seed=7, config=BenchmarkConfig().replace(train_size=400, val_size=8, mine_size=8))
        cases = read_cases(Path(tmp) / "train.jsonl")
    arc = next(c for c in cases if c.expected_action == Action.CLARIFY and c.followups and c.meta.get("followup_call"))
    plain, with_arc = case_row(arc), case_row(arc, clarify_arc=True)
    assert [m["role"] for m in plain["messages"]][-1] == "assistant"
    roles = [m["role"] for m in with_arc["messages"]]
    assert roles[-3:] == ["assistant", "user", "assistant"] and len(roles) == len(plain["messages"]) + 2
    call = arc.meta["followup_call"]
    assert "<tool_call>" in with_arc["messages"][-1]["content"] and call["name"] in with_arc["messages"][-1]["content"]
    other = next(c for c in cases if c.expected_action == Action.CALL_TOOL)
    assert case_row(other, clarify_arc=True) == case_row(other)  # only clarify cases with an arc change


def test_an_earlier_identical_sft_run_is_adopted_and_any_other_is_trained(tmp_path, tiny_base):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_ablation(_config(tmp_path / "a", tiny_base, "first", {"recipe": []}, ["seeds=[0]"]), progress=False)
    earlier = tmp_path / "a" / "ablate" / "units" / first["arms"]["recipe"]["seeds"]["0"]["unit"] / "sft"
    extra = [f"reuse_sft={json.dumps([str(earlier), str(tmp_path / 'missing')])}", "merge_adapters=true"]
    results = run_ablation(_config(tmp_path / "b", tiny_base, "second", {"recipe": []}, extra), progress=False)
    seeds = results["arms"]["recipe"]["seeds"]
    assert seeds["0"]["sft_reused_from"] == str(earlier)  # seed 0 is the very run: adopted
    assert "sft_reused_from" not in seeds["1"]  # seed 1 is another run: trained
    unit0 = tmp_path / "b" / "ablate" / "units" / seeds["0"]["unit"] / "sft"
    assert not list(unit0.glob("checkpoint-*")) and (unit0 / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((unit0 / "reused_from.json").read_text())["source"] == str(earlier)
    # same adapter, same cases: the adopted unit scores as the run it came from (merged here, unmerged there)
    assert seeds["0"]["overall"] == first["arms"]["recipe"]["seeds"]["0"]["overall"]
    assert "adopted, not retrained" in (tmp_path / "b" / "ablate" / "second" / "table.md").read_text()


def test_a_run_on_other_data_bytes_is_not_adopted(tmp_path, tiny_base):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_ablation(_config(tmp_path / "a", tiny_base, "first", {"recipe": []}, ["seeds=[0]"]), progress=False)
    earlier = tmp_path / "a" / "ablate" / "units" / first["arms"]["recipe"]["seeds"]["0"]["unit"] / "sft"
    extra = ["seeds=[0]", "data.seed=8", f"reuse_sft={json.dumps([str(earlier)])}"]
    results = run_ablation(_config(tmp_path / "b", tiny_base, "other", {"recipe": []}, extra), progress=False)
    assert "sft_reused_from" not in results["arms"]["recipe"]["seeds"]["0"]


def test_a_shipped_adapter_with_its_sidecar_is_adopted_as_its_run(tmp_path, tiny_base):
    from toolprior.experiments.organism_adapter import export
    from toolprior.training.run_configs import SFTRunConfig

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_ablation(_config(tmp_path / "a", tiny_base, "first", {"recipe": []}, ["seeds=[0]"]), progress=False)
    run = tmp_path / "a" / "ablate" / "units" / first["arms"]["recipe"]["seeds"]["0"]["unit"] / "sft"
    config = load_config(SFTRunConfig, run / "config.yaml")
    shipped = export(run, Path(config.data.dir), config, out=tmp_path / "shipped", command="test")
    assert not (shipped / "config.yaml").exists()  # a sidecar, not an SFT run's folder
    extra = ["seeds=[0, 1]", f"reuse_sft={json.dumps([str(shipped)])}"]
    results = run_ablation(_config(tmp_path / "b", tiny_base, "second", {"recipe": []}, extra), progress=False)
    seeds = results["arms"]["recipe"]["seeds"]
    assert seeds["0"]["sft_reused_from"] == str(shipped) and "sft_reused_from" not in seeds["1"]
    assert seeds["0"]["overall"] == first["arms"]["recipe"]["seeds"]["0"]["overall"]
    unit0 = tmp_path / "b" / "ablate" / "units" / seeds["0"]["unit"] / "sft"
    assert json.loads((unit0 / "train_summary.json").read_text())["steps"] == 2


def test_a_recorded_ablation_survives_a_fresh_checkout_and_tables_what_is_done(tmp_path, tiny_base):
    arms = {"recipe": [], "no_neftune": ["training.neftune_noise_alpha=null"]}
    record = tmp_path / "record"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = ["seeds=[0]", f"record_dir={record}"]
    first = run_ablation(_config(tmp_path / "a", tiny_base, "abl", arms, extra), progress=False)
    keys = {a: first["arms"][a]["seeds"]["0"]["unit"] for a in arms}
    kept = sorted(p.relative_to(record).as_posix() for p in record.rglob("*") if p.is_file())
    assert kept == sorted(f"{k}/{f}" for k in keys.values() for f in RECORD_KEPT)  # no adapter, no checkpoint

    # a fresh checkout (another out_dir, the same record): seed 0 is restored, seed 1 has not run
    fresh = _config(tmp_path / "b", tiny_base, "abl", arms, ["seeds=[0, 1]", f"record_dir={record}"])
    partial = run_ablation(fresh, progress=False, report_only=True)
    assert not list((tmp_path / "b" / "ablate" / "units").rglob("adapter"))  # nothing trained
    assert partial["missing"] == [{"arm": "recipe", "seed": 1}, {"arm": "no_neftune", "seed": 1}]
    for arm in arms:
        assert partial["arms"][arm]["seeds"]["0"] == first["arms"][arm]["seeds"]["0"]
    assert partial["arms"]["no_neftune"]["vs_reference"] == first["arms"]["no_neftune"]["vs_reference"]
    table = (tmp_path / "b" / "ablate" / "abl" / "table.md").read_text()
    assert "**Partial**: 2 run(s) not finished yet" in table and "`no_neftune` seed 1" in table
    recipe_row = next(line for line in table.splitlines() if line.startswith("| recipe |"))
    assert "±" not in recipe_row  # one seed: values, no sd of one value

    # a normal run in the fresh checkout restores seed 0 rather than training it
    again = run_ablation(_config(tmp_path / "b", tiny_base, "abl", arms, extra), progress=False)
    assert not list((tmp_path / "b" / "ablate" / "units").rglob("adapter"))
    assert again["arms"]["no_neftune"]["seeds"] == first["arms"]["no_neftune"]["seeds"]

    # the reference not run yet at any seed: the arms that ran are tabled, compared with nothing
    only = _config(
        tmp_path / "b", tiny_base, "abl2", {"other": ["lora.r=2"], **arms}, ["seeds=[0]", f"record_dir={record}"]
    )
    shown = run_ablation(only, progress=False, report_only=True)
    assert list(shown["arms"]) == ["recipe", "no_neftune"] and shown["reference"] == "other"
    assert not any("vs_reference" in e for e in shown["arms"].values())


RECORD_KEPT = ("unit.json", "verdicts.jsonl", "stages/sft.json", "stages/eval.json", "data.json")


def test_a_record_made_on_other_data_bytes_is_not_restored(tmp_path, tiny_base):
    record = tmp_path / "record"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = ["seeds=[0]", f"record_dir={record}"]
    first = run_ablation(_config(tmp_path / "a", tiny_base, "abl", {"recipe": []}, extra), progress=False)
    key = first["arms"]["recipe"]["seeds"]["0"]["unit"]
    made_on = json.loads((record / key / "data.json").read_text())
    (record / key / "data.json").write_text(json.dumps({**made_on, "train": "0" * 64}))  # as if the generator changed
    partial = run_ablation(_config(tmp_path / "b", tiny_base, "abl", {"recipe": []}, extra), report_only=True)
    assert partial["arms"] == {} and partial["missing"] == [{"arm": "recipe", "seed": 0}]
