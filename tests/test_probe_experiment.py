"""The probe runner end to end on a real tiny agent (Qwen3 + a real PEFT LoRA adapter), its CLI, and the README's
example script."""

from __future__ import annotations

import json
import runpy
import sys

import pytest

from toolprior.cli import main
from toolprior.config import load_config
from toolprior.errors import InputError
from toolprior.probes.baseline import random_twin
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.probes.experiment_run import run_probe_experiment
from toolprior.probes.linear_probe import ProbeWeights

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def agent(tmp_path_factory, tiny_tokenizer):
    """A tiny Qwen3 saved as a model folder, a LoRA adapter on it with non-zero weights (so switching it off changes
    the activations), and a small generated benchmark with clarify / call_tool twins."""
    from peft import LoraConfig, get_peft_model

    from tests.conftest import make_tiny_qwen3
    from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

    root = tmp_path_factory.mktemp("probe_agent")
    model = make_tiny_qwen3(tiny_tokenizer, seed=3)
    model.save_pretrained(root / "model")
    tiny_tokenizer.save_pretrained(root / "model")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(root / "adapter")
    config = BenchmarkConfig().replace(
        train_size=40,
        val_size=5,
        mine_size=5,
        eval_per_category=1,
        eval_novel_per_category=1,
        twin_pairs={"train": 4, "val": 0, "mine": 0, "eval": 0, "eval_novel": 0},
    )
    write_benchmark(root / "data", seed=0, config=config)
    return root


def overrides(agent, *extra: str) -> list[str]:
    return [
        f"model.path={agent / 'model'}",
        f"data.cases=[{agent / 'data' / 'train.jsonl'}]",
        "capture.positions=[decision]",
        "capture.batch_size=8",
        "probes.methods=[logreg]",
        "probes.folds=3",
        "patching.k=3",
        "patching.max_pairs=2",
        *extra,
    ]


def test_runner_end_to_end_writes_the_report_block_and_plots(agent, tmp_path):
    config = load_config(ProbeExperimentConfig, None, overrides(agent, f"model.adapter={agent / 'adapter'}"))
    out = tmp_path / "run"
    summary = run_probe_experiment(config, out, progress=False)

    block = json.loads((out / "probe_block.json").read_text())
    assert block == summary["probe"]
    assert block["position"] == "decision" and block["task"] == "clarify_vs_call_tool"
    assert [row["layer"] for row in block["layers"]] == [0, 1]
    for row in block["layers"]:
        assert {"layer", "acc", "control_acc", "selectivity", "auroc", "perm_acc", "base_acc"} <= set(row)
    selective = [r for r in block["layers"] if r["selectivity"] > 0]
    expected = max(selective, key=lambda r: r["acc"])["layer"] if selective else None
    assert block["best_layer"] == expected
    assert summary["baseline"] == "base model (adapter disabled)"
    assert set(summary["curves"]) == {
        "decision__resid_post__clarify_vs_call_tool__logreg",
        "decision__resid_post__five_way__logreg",
    }

    plots = {p.name for p in (out / "plots").iterdir()}
    assert {
        "layer_curve__decision__resid_post__clarify_vs_call_tool__logreg.png",
        "layer_curve__decision__resid_post__five_way__logreg.png",
        "logit_lens.png",
        "patching_resid_exact.png",
        "patching_resid_attribution.png",
        "patching_heads_exact.png",
        "patching_heads_attribution.png",
        "patching_exact_vs_attribution.png",
    } <= plots
    assert all((out / "plots" / name).read_bytes()[:8] == PNG for name in plots)

    lens = json.loads((out / "logit_lens.json").read_text())
    assert lens["final_max_abs_diff"] < 1e-4
    patching = json.loads((out / "patching.json").read_text())
    assert patching["pairs"] == 2 and patching["resid_exact"]["columns"] == [0, 1, 2]
    assert set(patching["comparison_resid"]["denoise"]) >= {"spearman", "top_layers_agree", "exact_layer_ranking"}
    gap = patching["comparison_resid"]["twin_gap"]
    resid = patching["resid_exact"]
    assert gap["mean"] == pytest.approx(resid["clean_mean"] - resid["corrupted_mean"], abs=1e-5)
    report_md = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    best = next(r for r in summary["probe"]["layers"] if r["layer"] == summary["probe"]["best_layer"])
    assert f"accuracy {best['acc']:.3f} on held-out templates" in report_md
    assert "Exact vs attribution patching" in report_md and "## Logit lens" in report_md
    assert "report.md" in summary["files"] and "summary.json" in summary["files"]
    probes = ProbeWeights.load(out / "probes" / "decision__resid_post__clarify_vs_call_tool__logreg")
    assert probes["blocks.1.hook_resid_post"].direction.shape == (64,)

    def strict(constant: str) -> None:
        raise AssertionError(f"non-JSON constant {constant} written")

    for name in ("summary.json", "patching.json", "probe_block.json", "logit_lens.json"):
        json.loads((out / name).read_text(), parse_constant=strict)
    assert (out / "config.yaml").is_file()


def test_runner_refuses_held_out_splits(agent, tmp_path):
    with pytest.raises(InputError, match=r"data\.splits\[1\]: 'eval' is held out"):
        load_config(ProbeExperimentConfig, None, overrides(agent, "data.splits=[train, eval]"))
    config = load_config(ProbeExperimentConfig, None, overrides(agent))
    config.data.splits = ["train", "eval"]  # a config built in code is checked again by the runner
    with pytest.raises(InputError, match="held out"):
        run_probe_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_probe_command_reports_bad_settings_in_one_line(agent, tmp_path, capsys):
    config = tmp_path / "probe.yaml"
    cases = agent / "data" / "train.jsonl"
    config.write_text(f"model:\n  path: {agent / 'model'}\ndata:\n  cases: [{cases}]\nprobes:\n  taskz: [five_way]\n")
    assert main(["probe", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{config}:6" in err[0] and "probes.taskz" in err[0]
    config.write_text(f"data:\n  cases: [{cases}]\n  splits: [eval]\n")
    assert main(["probe", str(config), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.splits" in err[0]


def test_random_baseline_differs_from_the_agent(tiny_tokenizer):
    from tests.conftest import make_tiny_qwen3
    from toolprior.fingerprint import model_fingerprint

    model = make_tiny_qwen3(tiny_tokenizer, seed=0)
    fresh = random_twin(model, seed=0)
    assert type(fresh) is type(model)
    assert model_fingerprint(fresh).id != model_fingerprint(model).id
    assert model_fingerprint(random_twin(model, seed=0)).id == model_fingerprint(fresh).id  # reproducible


def test_probe_example_script_runs_on_a_local_model(agent, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "experiments" / "probe_example.py"
    out = tmp_path / "example"
    cases = str(agent / "data" / "train.jsonl")
    argv = [str(script), str(agent / "model"), "--adapter", str(agent / "adapter"), "--cases", cases, "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    block = json.loads(capsys.readouterr().out)
    assert block["position"] == "decision" and len(block["layers"]) == 2
    assert all(0.0 <= row["acc"] <= 1.0 for row in block["layers"])
    assert (out / "layer_curve.png").read_bytes()[:8] == PNG


def test_readme_shows_the_probe_example_as_it_is():
    """The README's probe snippet is the body of experiments/probe_example.py's `probe`, line for line."""
    import inspect
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    namespace = runpy.run_path(str(root / "experiments" / "probe_example.py"))
    source = inspect.getsource(namespace["probe"])
    body = textwrap.dedent(source.split('"""', 2)[-1] if '"""' in source else source.split("\n", 1)[1])
    body_lines = [line for line in body.splitlines() if line.strip() and not line.startswith("return")]
    readme = (root / "README.md").read_text()
    for line in body_lines:
        assert line in readme, f"README is missing: {line}"


def test_load_agent_takes_the_tokenizer_saved_with_the_adapter(agent, tmp_path, tiny_tokenizer):
    """SFT saves the tokenizer next to the adapter (it may have grown tokens); the agent is loaded with that one."""
    import shutil

    from toolprior.modeling import load_agent

    adapter = tmp_path / "adapter"
    shutil.copytree(agent / "adapter", adapter)
    grown = copy_tokenizer(tiny_tokenizer)
    grown.add_tokens(["<brand_new_tag>"])
    grown.save_pretrained(adapter)
    model, tokenizer = load_agent(agent / "model", adapter)
    assert len(tokenizer) == len(tiny_tokenizer) + 1 and tokenizer.padding_side == "left"
    _, plain = load_agent(agent / "model")
    assert len(plain) == len(tiny_tokenizer)
    assert type(model).__name__.startswith("PeftModel")


def copy_tokenizer(tokenizer):
    import copy

    return copy.deepcopy(tokenizer)
