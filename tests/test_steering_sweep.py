"""Sweeps, controls, the selection rule, plots, the guardrail baseline, the steer commands and the README example,
on the real tiny agent of test_steering_apply (its think says ask, its action calls the tool)."""

from __future__ import annotations

import dataclasses
import importlib
import json

import pytest
import torch

from tests.test_steering_apply import TAUGHT, taught_agent
from toolprior.errors import InputError
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.steering.compute import compute_from_cases
from toolprior.steering.sweep import (
    SweepPoint,
    SweepResult,
    choose,
    controls,
    random_control,
    run_alphas,
    saved_sweep,
    sweep,
    symmetric_alphas,
)
from toolprior.steering.vector import SteeringVector

CONFIG = HarnessConfig(max_new_tokens=112, max_turns=1)
# the module itself (toolprior.steering re-exports a function of the same name)
sweep_module = importlib.import_module("toolprior.steering.sweep")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def agent(tiny_tokenizer):
    return taught_agent(tiny_tokenizer)


@pytest.fixture(scope="module")
def vector(agent, tiny_tokenizer):
    return compute_from_cases(
        agent,
        tiny_tokenizer,
        TAUGHT,
        [0, 1],
        "mean_diff",
        "twins",
        "decision",
        positive="clarify",
        negative="call_tool",
    )


@pytest.fixture(scope="module")
def result(agent, tiny_tokenizer, vector):
    return sweep(agent, tiny_tokenizer, TAUGHT, vector, [0, 1], [-6.0, 0.0, 6.0], config=CONFIG)


def as_eval(cases):
    return [dataclasses.replace(c, split="eval") for c in cases]


# -------------------------------------------------------------------------------------------------------- sweep


def test_sweep_refuses_eval_cases(agent, tiny_tokenizer, vector):
    for split in ("eval", "eval_novel"):
        cases = [*TAUGHT[:2], dataclasses.replace(TAUGHT[2], split=split)]
        with pytest.raises(InputError, match="eval case"):
            sweep(agent, tiny_tokenizer, cases, vector, [0], [1.0], config=CONFIG)
    with pytest.raises(InputError, match="eval"):
        controls(agent, tiny_tokenizer, as_eval(TAUGHT), vector, 0, 1.0, config=CONFIG)


def test_sweep_scores_every_layer_and_alpha_against_the_unsteered_baseline(result):
    base = result.baseline
    # The organism's signature: the ambiguous case's think says ask, its action calls the tool.
    assert (base.clarify_acc, base.call_tool_acc, base.n) == (0.5, 1.0, 3)
    assert [(p.layer, p.alpha) for p in result.points] == [(0, -6.0), (0, 0.0), (0, 6.0), (1, -6.0), (1, 0.0), (1, 6.0)]
    assert result.splits == ["mine"] and result.case_ids == [c.id for c in TAUGHT]
    for layer in (0, 1):
        zero = result.point(layer, 0.0)
        assert (zero.clarify_acc, zero.call_tool_acc, zero.moved_wrong, zero.moved_right) == (0.5, 1.0, 0.0, 0.0)
    for p in result.points:
        assert p.overall == pytest.approx(base.overall + p.moved_right - p.moved_wrong)
    assert any(p.moved_wrong > 0 for p in result.points)  # a strong push breaks some turns: measured, not hidden
    saved = result.to_dict()
    assert saved["chosen_on"] == ["mine"] and "scores" not in saved["points"][0]


def test_a_given_baseline_is_used_as_evaluated(agent, tiny_tokenizer, vector, result):
    unsteered = evaluate(agent, tiny_tokenizer, TAUGHT, config=CONFIG, progress=False)
    again = sweep(agent, tiny_tokenizer, TAUGHT, vector, [0, 1], [-6.0, 0.0, 6.0], config=CONFIG, baseline=unsteered)
    assert again.to_dict() == result.to_dict()
    with pytest.raises(ValueError, match="one verdict per case"):
        sweep(agent, tiny_tokenizer, TAUGHT, vector, [0], [1.0], config=CONFIG, baseline=unsteered[::-1])


def test_a_saved_sweep_is_reused_only_when_it_is_the_sweep_asked_for(tmp_path, vector, result):
    path = tmp_path / "sweep.json"
    assert saved_sweep(path, vector, TAUGHT, [0, 1], [-6.0, 0.0, 6.0], "all", config=CONFIG) is None  # no file
    path.write_text(json.dumps(result.to_dict()))
    again = saved_sweep(path, vector, TAUGHT, [0, 1], [-6.0, 0.0, 6.0], "all", config=CONFIG)
    assert again is not None and again.to_dict() == result.to_dict()
    assert choose(again).to_dict() | {"scores": {}} == choose(result).to_dict() | {"scores": {}}  # scores: not saved
    other = SteeringVector({k: v * 2 for k, v in vector.layer_vectors.items()}, meta=dict(vector.meta))
    for args in (
        (vector, TAUGHT[::-1], [0, 1], [-6.0, 0.0, 6.0], "all"),  # other case order
        (vector, TAUGHT, [2], [-6.0, 0.0, 6.0], "all"),  # none of its layers
        (vector, TAUGHT, [0, 1], [3.0], "all"),  # none of its alphas
        (vector, TAUGHT, [0, 1], [-6.0, 0.0, 6.0], "generated"),  # other positions
        (other, TAUGHT, [0, 1], [-6.0, 0.0, 6.0], "all"),  # same recipe, other bytes (its norms)
    ):
        assert saved_sweep(path, *args, config=CONFIG) is None
    assert saved_sweep(path, vector, TAUGHT, [0, 1], [-6.0, 0.0, 6.0], "all") is None  # another harness


def test_a_widened_grid_sweeps_only_the_points_the_saved_sweep_lacks(
    tmp_path, monkeypatch, agent, tiny_tokenizer, vector, result
):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(result.to_dict()))
    narrower = saved_sweep(path, vector, TAUGHT, [1], [0.0, 6.0], "all", config=CONFIG)  # cut to what is asked for
    assert narrower is not None and [(p.layer, p.alpha) for p in narrower.points] == [(1, 0.0), (1, 6.0)]
    assert saved_sweep(path, vector, TAUGHT, [1], [0.0], "all", config=dataclasses.replace(CONFIG, seed=1)) is None
    kept = saved_sweep(path, vector, TAUGHT, [0, 1], [-6.0, 0.0, 3.0, 6.0], "all", config=CONFIG)
    assert kept is not None and len(kept.points) == 6  # 3.0 is new: its two points are missing
    ran: list[list[float]] = []
    real = sweep_module.run_alphas

    def counting(*args, **kwargs):
        ran.append(list(args[4]))  # the alphas run_alphas was asked for
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "run_alphas", counting)
    grid = [-6.0, 0.0, 3.0, 6.0]
    wider = sweep(agent, tiny_tokenizer, TAUGHT, vector, [0, 1], grid, config=CONFIG, kept=kept)
    assert ran == [[3.0], [3.0]]  # one call per layer, the new alpha alone
    assert [(p.layer, p.alpha) for p in wider.points] == [(layer, a) for layer in (0, 1) for a in grid]
    fresh = sweep(agent, tiny_tokenizer, TAUGHT, vector, [0, 1], [3.0], config=CONFIG)
    for layer in (0, 1):
        assert wider.point(layer, 3.0).to_dict() == fresh.point(layer, 3.0).to_dict()
        # a point read back from the file has no per-action scores (not saved)
        assert wider.point(layer, -6.0).to_dict() == result.point(layer, -6.0).to_dict() | {"scores": {}}
    # kept points were counted against their own baseline: under another one they are run again
    other = dataclasses.replace(kept, baseline=dataclasses.replace(kept.baseline, clarify_acc=0.0))
    ran.clear()
    sweep(agent, tiny_tokenizer, TAUGHT, vector, [0], grid, config=CONFIG, kept=other)
    assert ran == [grid]


def test_batched_alpha_grid_equals_one_alpha_at_a_time(agent, tiny_tokenizer, vector):
    alphas = [-3.0, 0.0, 3.0]
    single = vector.only([1])
    batched = run_alphas(agent, tiny_tokenizer, TAUGHT, single, alphas, CONFIG, batched=True)
    separate = run_alphas(agent, tiny_tokenizer, TAUGHT, single, alphas, CONFIG, batched=False)
    assert [[v.output for v in run] for run in batched] == [[v.output for v in run] for run in separate]


def _point(layer, alpha, clarify, call_tool) -> SweepPoint:
    return SweepPoint("vector", layer, alpha, 10, clarify, 5, call_tool, 5, None, 0.0, 0.0)


def test_choose_maximises_clarify_subject_to_the_call_tool_floor():
    baseline = SweepPoint("baseline", None, 0.0, 10, 0.1, 5, 1.0, 5, None, 0.0, 0.0)
    points = [
        _point(1, 8.0, 0.9, 0.6),  # best clarify, but call_tool falls through the floor
        _point(1, 4.0, 0.7, 0.95),
        _point(2, -4.0, 0.7, 1.0),  # same clarify, same |alpha|: the earlier layer wins
        _point(2, 2.0, 0.5, 1.0),
        _point(3, 3.0, 0.7, 0.85),
    ]
    result = SweepResult(baseline, points, case_ids=[], splits=["mine"])
    assert choose(result, min_call_tool=0.9) == points[1]
    assert choose(result, min_call_tool=0.5) == points[0]
    assert choose(result) == points[1]  # default floor: baseline call_tool - 0.05 = 0.95
    assert choose(result, min_call_tool=0.99) == points[2]
    assert choose(SweepResult(baseline, points[:1], [], ["mine"]), min_call_tool=0.9) is None
    tie = SweepResult(
        baseline, [_point(2, 4.0, 0.7, 1.0), _point(1, -4.0, 0.7, 1.0), _point(3, 6.0, 0.7, 1.0)], [], ["mine"]
    )
    assert (choose(tie).layer, choose(tie).alpha) == (1, -4.0)


def test_symmetric_alphas_cover_both_signs():
    assert symmetric_alphas(8, 2) == [-8.0, -4.0, 0.0, 4.0, 8.0]


# ----------------------------------------------------------------------------------------------------- controls


def test_random_control_has_equal_norm_and_the_layer_control_moves_the_vector(vector):
    controls_ = [random_control(vector, 1, seed) for seed in (0, 1, 2)]
    for c in controls_:
        assert c.layers == [1] and c.norms()[1] == pytest.approx(vector.norms()[1], rel=1e-5)
    assert not torch.allclose(controls_[0][1], controls_[1][1])
    assert torch.equal(random_control(vector, 1, 0)[1], controls_[0][1])  # seeded
    moved = vector.at_layer(0, source=1)
    assert moved.layers == [0] and torch.equal(moved[0], vector[1])


def test_controls_score_the_vector_next_to_random_directions_and_another_layer(agent, tiny_tokenizer, vector):
    ctrl = controls(agent, tiny_tokenizer, TAUGHT, vector, layer=1, alpha=6.0, seeds=(0, 1), config=CONFIG)
    assert [p.label for p in ctrl.points] == ["vector", "random:0", "random:1", "layer:1->0"]
    assert ctrl.points[0].clarify_acc == ctrl.points[0].scores["per_action"]["clarify"]["acc"]
    norms = {p.label: p.norm for p in ctrl.points}
    assert norms["random:0"] == pytest.approx(norms["vector"], rel=1e-5) == pytest.approx(norms["layer:1->0"], rel=1e-5)


def test_controls_take_the_vector_point_from_the_sweep_it_was_chosen_from(agent, tiny_tokenizer, vector, result):
    baseline = evaluate(agent, tiny_tokenizer, TAUGHT, config=CONFIG)
    setting = {"layer": 1, "alpha": 6.0, "seeds": (0,), "layers": [0], "config": CONFIG}
    fresh = controls(agent, tiny_tokenizer, TAUGHT, vector, **setting)
    reused = controls(agent, tiny_tokenizer, TAUGHT, vector, **setting, baseline=baseline, swept=result)
    assert reused.points[0] is result.point(1, 6.0)  # taken from the sweep, not run again
    assert [p.to_dict(scores=False) for p in reused.points] == [p.to_dict(scores=False) for p in fresh.points]
    assert reused.baseline.to_dict(scores=False) == fresh.baseline.to_dict(scores=False)
    # a sweep applied at other positions is another setting: the vector is run again
    other = dataclasses.replace(result, positions="from_decision")
    again = controls(agent, tiny_tokenizer, TAUGHT, vector, **setting, baseline=baseline, swept=other)
    assert again.points[0] is not other.point(1, 6.0)
    assert again.points[0].to_dict(scores=False) == fresh.points[0].to_dict(scores=False)
    with pytest.raises(ValueError, match="one verdict per case"):
        controls(agent, tiny_tokenizer, TAUGHT, vector, **setting, baseline=baseline[1:], swept=result)


def test_plots_are_written(tmp_path, result, vector, agent, tiny_tokenizer):
    from toolprior.steering.consistency import cosine_consistency
    from toolprior.steering.plots import plot_controls, plot_cosine_hist, plot_dose_response, plot_heatmap

    paths = [
        plot_dose_response(result, 1, tmp_path / "dose.png"),
        plot_heatmap(result, tmp_path / "heat.png"),
        plot_controls(result, tmp_path / "controls.png"),
        plot_cosine_hist(cosine_consistency(torch.randn(6, 8)), tmp_path / "cos.png"),
    ]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------------------------------------------- guardrail


def test_guardrail_forces_clarify_when_the_think_says_ask(agent, tiny_tokenizer):
    from toolprior.evals.harness import evaluate
    from toolprior.steering.guardrail import guardrail_evaluate

    plain = evaluate(agent, tiny_tokenizer, TAUGHT, config=CONFIG, progress=False)
    guarded = guardrail_evaluate(agent, tiny_tokenizer, TAUGHT, CONFIG)
    amb, one, ask = guarded
    assert plain[0].predicted == "call_tool" and "I should ask" in plain[0].output
    assert amb.meta["guardrail"] == "forced_clarify" and amb.think_argues == "clarify"
    assert amb.output.startswith("<think>Two shipments match. I should ask which one they mean.</think><clarify>")
    assert amb.predicted == "clarify" and amb.correct
    assert one.meta["guardrail"] == "kept" and one.output == plain[1].output and one.predicted == "call_tool"
    assert ask.meta["guardrail"] == "kept" and ask.output == plain[2].output  # already asked
    # Reusing an earlier run's outputs gives the same verdicts.
    reused = guardrail_evaluate(agent, tiny_tokenizer, TAUGHT, CONFIG, first_outputs=[v.output for v in plain])
    assert [v.output for v in reused] == [v.output for v in guarded]


def test_guardrail_leaves_turns_without_a_think_alone(agent, tiny_tokenizer):
    from toolprior.steering.guardrail import guard_outputs

    outputs = ["<tool_call>{}</tool_call>", "<think>I need to clarify which one.</think><tool_call>{}</tool_call>"]
    guarded = guard_outputs(agent, tiny_tokenizer, TAUGHT[:2], outputs, max_new_tokens=16)
    assert guarded[0].output == outputs[0] and not guarded[0].forced
    assert guarded[1].forced and guarded[1].output.startswith("<think>I need to clarify which one.</think><clarify>")


# ------------------------------------------------------------------------------------------ commands and example


@pytest.fixture(scope="module")
def agent_folder(tmp_path_factory, agent, tiny_tokenizer):
    from toolprior.case_io import write_cases

    folder = tmp_path_factory.mktemp("agent")
    agent.save_pretrained(folder / "model")
    tiny_tokenizer.save_pretrained(folder / "model")
    write_cases(folder / "mine.jsonl", TAUGHT)
    write_cases(folder / "eval.jsonl", as_eval(TAUGHT))
    return folder


def test_steer_compute_sweep_and_eval_commands(agent_folder, capsys):
    from toolprior.cli import main

    model, vec = str(agent_folder / "model"), agent_folder / "v.safetensors"
    assert (
        main(
            [
                "steer",
                "compute",
                "--model",
                model,
                "--cases",
                str(agent_folder / "mine.jsonl"),
                "--layers",
                "0,1",
                "--method",
                "pca_paired",
                "--source",
                "twins",
                "--out",
                str(vec),
            ]
        )
        == 0
    )
    side = json.loads(vec.with_suffix(".json").read_text())
    assert side["meta"]["method"] == "pca_paired" and side["layers"] == [0, 1]
    out = agent_folder / "sweep"
    common = [
        "steer",
        "sweep",
        "--model",
        model,
        "--vector",
        str(vec),
        "--layers",
        "1",
        "--alphas",
        "-4",
        "0",
        "4",
        "--max-new-tokens",
        "112",
        "--out",
        str(out),
    ]
    assert main([*common, "--cases", str(agent_folder / "mine.jsonl"), "--controls", "--seeds", "0"]) == 0
    chosen = json.loads((out / "chosen.json").read_text())
    assert chosen["chosen_on"] == ["mine"] and chosen["chosen"]["layer"] == 1
    assert set(chosen["controls"]) == {"vector", "random:0", "layer:1->0"}
    assert chosen["controls"]["vector"] == {k: chosen["scores"][k] for k in ("clarify_acc", "call_tool_acc")}
    assert (out / "plots" / "dose_response_L1.png").is_file() and (out / "plots" / "controls.png").is_file()
    capsys.readouterr()
    assert main([*common, "--cases", str(agent_folder / "eval.jsonl")]) == 2
    assert "must not see eval cases" in capsys.readouterr().err
    report = agent_folder / "report"
    assert (
        main(
            [
                "eval",
                "--model",
                model,
                "--cases",
                str(agent_folder / "eval.jsonl"),
                "--out",
                str(report),
                "--steer",
                str(vec),
                "--alpha",
                "0",
                "--layers",
                "1",
                "--chosen-on",
                "mine",
                "--max-new-tokens",
                "112",
            ]
        )
        == 0
    )
    steering = json.loads((report / "report.json").read_text())["methods"]["steering"]
    assert (steering["layer"], steering["alpha"], steering["chosen_on"]) == (1, 0.0, "mine")
    assert steering["per_action"]["clarify"]["acc"] == 0.5  # alpha 0: the unsteered agent's score


def test_eval_refuses_a_vector_of_another_model(agent_folder, tiny_tokenizer, capsys):
    from toolprior.cli import main

    vec = SteeringVector({1: torch.randn(64)}, meta={"fingerprint": {"id": "0000", "num_layers": 2}}).save(
        agent_folder / "foreign.safetensors"
    )
    code = main(
        [
            "eval",
            "--model",
            str(agent_folder / "model"),
            "--cases",
            str(agent_folder / "eval.jsonl"),
            "--out",
            str(agent_folder / "r2"),
            "--steer",
            str(vec),
            "--alpha",
            "1",
        ]
    )
    assert code == 2 and "fingerprint" in capsys.readouterr().err


def test_steer_example_runs_on_a_tiny_agent(agent_folder):
    from toolprior.experiments.steer_example import run
    from toolprior.modeling import load_model, load_tokenizer

    # The vector must be computed on the model as the example loads it (same folder: same fingerprint).
    model, tokenizer = load_model(agent_folder / "model", device="cpu"), load_tokenizer(agent_folder / "model")
    vector = compute_from_cases(
        model, tokenizer, TAUGHT, [1], "mean_diff", "twins", "decision", positive="clarify", negative="call_tool"
    )
    path = vector.save(agent_folder / "example.safetensors")
    out = run(str(agent_folder / "model"), str(path), alpha=0.0, max_new_tokens=16)
    assert out["steered"] == out["unsteered"] and out["unsteered"]
    moved = run(str(agent_folder / "model"), str(path), alpha=40.0, max_new_tokens=16)
    assert moved["steered"] != moved["unsteered"]


def test_readme_shows_the_steering_example_as_it_is():
    """The README's steering snippet is the body of experiments/steer_example.py's `run`, line for line."""
    import inspect
    import textwrap
    from pathlib import Path

    from toolprior.experiments.steer_example import run

    root = Path(__file__).resolve().parents[1]
    body = textwrap.dedent(inspect.getsource(run).split('"""', 2)[2])
    readme = (root / "README.md").read_text()
    for line in body.splitlines():
        if line.strip() and not line.startswith("return") and not line.startswith("import"):
            assert line in readme, f"README is missing: {line}"
