"""SimPO, DPO and adversarial SFT on mined pairs, each continuing a real SFT adapter on a real NF4 tiny Qwen3 (CPU).

The tiny world is built here: a benchmark, a BPE tokenizer trained on its text, a random 2-layer Qwen3 saved to
disk, a LoRA "SFT" adapter with non-zero weights (so the base and the SFT agent differ), and pairs mined from an
agent with the call-tool prior."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import make_tiny_qwen3
from tests.test_pairs import agent_verdicts
from toolprior.actions import Action
from toolprior.case_io import read_cases, write_cases
from toolprior.chat_template import render_prompt
from toolprior.cli import main as cli_main
from toolprior.config import load_config
from toolprior.errors import InputError
from toolprior.output_format import render_turn
from toolprior.training import (
    AdvSFTRunConfig,
    DPORunConfig,
    SimPORunConfig,
    preference_text_row,
    simpo_loss_settings,
    simpo_trl_config,
    train_adv_sft,
    train_dpo,
    train_simpo,
)
from toolprior.training.pair_mining import mine_pairs
from toolprior.training.pairs import read_pairs, write_pairs
from toolprior.training.preference import focused, load_pairs_for_training

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model

    from toolprior.tokenizer import train_tokenizer
    from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

    root = tmp_path_factory.mktemp("world")
    config = BenchmarkConfig().replace(
        train_size=50, val_size=10, mine_size=40, eval_per_category=1, eval_novel_per_category=1
    )
    write_benchmark(root / "data", seed=1, config=config)
    cases = {s: read_cases(root / "data" / f"{s}.jsonl") for s in ("train", "mine", "eval", "eval_novel")}
    texts = [
        text
        for split in cases.values()
        for c in split
        for text in (*(m.content for m in c.messages), *(t.description for t in c.tools), render_turn(c.gold))
    ]
    tokenizer = train_tokenizer(texts, vocab_size=1200)
    make_tiny_qwen3(tokenizer).save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(make_tiny_qwen3(tokenizer, seed=1), lora).save_pretrained(root / "sft_adapter")
    pairs = mine_pairs(cases["mine"], agent_verdicts(cases["mine"]), eval_cases=[*cases["eval"], *cases["eval_novel"]])
    write_pairs(root / "pairs.jsonl", pairs)
    return {"root": root, "base": root / "base", "adapter": root / "sft_adapter", "pairs": root / "pairs.jsonl"}


def overrides(world: dict[str, Path], out: str, steps: int = 2) -> list[str]:
    return [
        f"output_dir={world['root'] / out}",
        f"model.base={world['base']}",
        f"model.adapter={world['adapter']}",
        f"data.pairs_file={world['pairs']}",
        f"data.eval_files=[{world['root'] / 'data' / 'eval.jsonl'}, {world['root'] / 'data' / 'eval_novel.jsonl'}]",
        f"training.max_steps={steps}",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.learning_rate=1.0e-3",
        "training.warmup_ratio=0.0",
        "training.logging_steps=1",
        "training.save_steps=2",
        "training.max_length=1024",
    ]


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def assert_adapter_trained(world: dict[str, Path], adapter_dir: Path) -> None:
    before, after = adapter_weights(world["adapter"]), adapter_weights(adapter_dir)
    assert before.keys() == after.keys()
    assert all(t.dtype == torch.float32 for t in after.values())  # not rounded to bfloat16
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(t).all() for t in after.values())


def summary_of(out: Path) -> dict:
    return json.loads((out / "train_summary.json").read_text())


# ------------------------------------------------------------------------------------------------------- settings


def test_simpo_loss_settings_convert_the_gamma_ratio():
    config = load_config(SimPORunConfig, None, ["preference.beta=2.0", "preference.gamma_beta_ratio=0.5"])
    settings = simpo_loss_settings(config)
    assert settings == {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": 2.0, "simpo_gamma": 1.0}
    args = simpo_trl_config(config, use_cpu=True)
    assert (args.loss_type, args.cpo_alpha, args.beta, args.simpo_gamma) == ("simpo", 0.0, 2.0, 1.0)
    case_study = load_config(SimPORunConfig, REPO_ROOT / "experiments/configs/simpo_case_study.yaml")
    assert simpo_loss_settings(case_study) == {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": 1.0, "simpo_gamma": 0.3}
    t = case_study.training
    assert (t.learning_rate, t.max_grad_norm, t.num_train_epochs) == (5e-7, 0.5, 2.0)
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps == 8
    with pytest.raises(InputError, match=r"preference\.beta"):
        simpo_loss_settings(load_config(SimPORunConfig, None, ["preference.beta=0"]))


def test_shipped_configs_load():
    for cls, name in (
        (SimPORunConfig, "simpo_organism"),
        (DPORunConfig, "dpo_organism"),
        (AdvSFTRunConfig, "adv_sft_organism"),
    ):
        config = load_config(cls, REPO_ROOT / f"experiments/configs/{name}.yaml")
        assert config.model.adapter == "runs/sft_organism/adapter"
        assert config.data.pairs_file == "runs/pairs.jsonl"
        assert config.data.eval_files  # the leak check runs again before training


def test_text_rows_give_the_inference_prompt(world):
    from toolprior.modeling import load_tokenizer

    tokenizer = load_tokenizer(world["base"])
    mine = {c.id: c for c in read_cases(world["root"] / "data" / "mine.jsonl")}
    for pair in read_pairs(world["pairs"])[:5]:
        row = preference_text_row(pair, tokenizer)
        assert row["prompt"] == render_prompt(tokenizer, mine[pair.id])  # tools included, as at inference
        assert row["chosen"] == pair.chosen_text + "<|end|>"
        assert row["rejected"] == pair.rejected_text + "<|end|>"


# ------------------------------------------------------------------------------------------------------------ runs


def test_simpo_run_trains_the_sft_adapter_and_resumes(world):
    config = load_config(SimPORunConfig, None, overrides(world, "simpo"))
    result = train_simpo(config)
    assert result.steps == 2 and result.resumed_from is None
    assert_adapter_trained(world, result.adapter_dir)
    summary = summary_of(result.output_dir)
    assert summary["steps"] == 2 and summary["pairs"] == result.pairs > 0
    assert summary["train_seconds"] > 0 and summary["final_loss"] == pytest.approx(result.final_loss)
    assert summary["settings"] == {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": 1.0, "simpo_gamma": 0.3}
    assert summary["start_adapter"] == str(world["adapter"])
    # a rerun with more steps picks up the last checkpoint
    resumed = train_simpo(load_config(SimPORunConfig, None, overrides(world, "simpo", steps=3)))
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-2")
    assert resumed.steps == 3
    # reopened when finished (a study's search does this on every restart): its training time is kept, not the
    # moment it took to find the run done
    trained_s = summary_of(result.output_dir)["train_seconds"]
    again = train_simpo(load_config(SimPORunConfig, None, overrides(world, "simpo", steps=3)))
    assert again.steps == 3 and summary_of(result.output_dir)["train_seconds"] >= trained_s
    assert summary_of(result.output_dir)["data_selection"]["focus_action"] is None
    # resumed under other settings: refused before anything in the folder is rewritten
    config_yaml = (result.output_dir / "config.yaml").read_text()
    with pytest.raises(
        InputError, match=r"run_key\.json: preference\.beta, training\.learning_rate: this run's checkpoints"
    ):
        train_simpo(
            load_config(
                SimPORunConfig,
                None,
                [*overrides(world, "simpo", steps=4), "training.learning_rate=5e-4", "preference.beta=2.0"],
            )
        )
    assert (result.output_dir / "config.yaml").read_text() == config_yaml


def test_cpo_simpo_adds_the_chosen_turns_nll_to_the_loss(world):
    """preference.cpo_alpha > 0 is TRL's CPO-SimPO: on the first step (the same weights, the same batch) its loss is
    pure SimPO's plus the chosen turns' negative log-likelihood, so it is larger."""
    pure = train_simpo(load_config(SimPORunConfig, None, overrides(world, "simpo_pure", steps=1)))
    cpo = train_simpo(
        load_config(SimPORunConfig, None, [*overrides(world, "cpo_simpo", steps=1), "preference.cpo_alpha=1.0"])
    )
    assert summary_of(cpo.output_dir)["settings"]["cpo_alpha"] == 1.0
    assert cpo.final_loss > pure.final_loss + 0.1  # the NLL of a turn the SFT agent did not write is far above 0.1
    with pytest.raises(InputError, match=r"cpo_alpha"):
        load_config(SimPORunConfig, None, ["preference.cpo_alpha=-1"])


def test_a_focused_pair_set_keeps_every_focus_pair_and_samples_the_rest(world):
    pairs = read_pairs(world["pairs"])
    action = Counter(p.expected_action for p in pairs).most_common()[-1][0]  # the rarest: others to sample from
    focus = [p for p in pairs if p.expected_action == action]
    kept = focused(pairs, action, share=0.5)
    assert [p for p in kept if p.expected_action == action] == focus
    others = len(kept) - len(focus)
    assert others == min(len(focus), len(pairs) - len(focus))  # 50%: as many others as focus pairs
    assert [p.id for p in kept] == [p.id for p in pairs if p in kept]  # in the file's order
    assert focused(pairs, action, share=0.5) == kept  # seeded
    # a share the others cannot fill keeps them all
    assert len(focused(pairs, action, share=0.01)) == len(pairs)
    missing = next(a for a in ("clarify", "refuse", "escalate", "answer_directly", "call_tool") if a not in
                   {p.expected_action for p in pairs})  # fmt: skip
    with pytest.raises(InputError, match=rf"data\.focus_action: no pair expects {missing} \(the file has "):
        focused(pairs, missing, share=0.5)
    config = load_config(
        SimPORunConfig, None, [*overrides(world, "focus"), f"data.focus_action={action}", "data.focus_share=0.5"]
    )
    assert load_pairs_for_training(config.data) == kept


def test_dpo_run_uses_the_sft_agent_as_reference(world):
    config = load_config(DPORunConfig, None, overrides(world, "dpo"))
    result = train_dpo(config)
    assert result.steps == 2
    assert_adapter_trained(world, result.adapter_dir)
    assert not (result.adapter_dir / "ref").exists()  # only the trained adapter is saved
    state = json.loads((result.output_dir / "checkpoint-2" / "trainer_state.json").read_text())
    first = next(h for h in state["log_history"] if "loss" in h)
    # step 1 is scored before any update: policy == reference exactly when the reference is base + SFT adapter
    # (against the bare base the SFT adapter's random weights would give non-zero rewards)
    assert first["rewards/chosen"] == 0.0 and first["rewards/rejected"] == 0.0
    assert first["loss"] == pytest.approx(0.6931, abs=1e-4)
    assert summary_of(result.output_dir)["settings"]["beta"] == 0.1


def test_adv_sft_run_trains_on_the_chosen_turns(world):
    config = load_config(AdvSFTRunConfig, None, overrides(world, "adv_sft"))
    result = train_adv_sft(config)
    assert result.steps == 2
    assert_adapter_trained(world, result.adapter_dir)
    summary = summary_of(result.output_dir)
    assert summary["settings"]["loss"] == "sft_on_chosen" and summary["pairs"] == result.pairs


def test_cli_train_simpo_refuses_pairs_on_held_out_cases(world, tmp_path, capsys):
    pair = read_pairs(world["pairs"])[0]
    mine = {c.id: c for c in read_cases(world["root"] / "data" / "mine.jsonl")}
    write_cases(tmp_path / "held.jsonl", [mine[pair.id]])
    args = ["train", "simpo", str(REPO_ROOT / "experiments/configs/simpo_organism.yaml")]
    for item in overrides(world, "never"):
        args += ["--set", item]
    code = cli_main([*args, "--set", f"data.eval_files=[{tmp_path / 'held.jsonl'}]"])
    err = capsys.readouterr().err
    assert code == 2 and pair.id in err and "Traceback" not in err
    assert not (world["root"] / "never").exists()


def test_mined_pairs_are_the_non_tool_failures(world):
    pairs = read_pairs(world["pairs"])
    assert pairs and all(p.expected_action != Action.CALL_TOOL.value for p in pairs)
