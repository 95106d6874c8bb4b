"""The tiny base recipe (`toolprior train base`): learning-rate schedule, corpus, and a real (tiny) pre-training run
saved as safetensors that loads back through `load_model`."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolprior.output_format import render_turn
from toolprior.training.base import (
    BaseConfig,
    _lr_at,
    build_base,
    corpus_cases,
    corpus_from_cases,
    format_primer,
    transcripts,
)


def test_warmup_stable_decay_schedule():
    total, warmup, peak = 100, 5, 1e-2
    lrs = [_lr_at(s, total, warmup, peak, 0.2) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / warmup) and lrs[warmup - 1] == pytest.approx(peak)
    assert all(lr == peak for lr in lrs[warmup:80])  # flat until the last 20%
    assert all(a > b for a, b in itertools.pairwise(lrs[80:]))  # then strictly decreasing
    assert lrs[-1] == pytest.approx(peak / 20)  # one step from zero


@pytest.fixture(scope="module")
def small_cases():
    return corpus_cases(BaseConfig(corpus_cases=30))


def test_default_corpus_holds_no_agent_transcript(small_cases):
    """By default the base never sees a think block next to the action it led to: the primer shuffles blocks
    across cases, and no document is a whole conversation. Action choice is left to SFT."""
    assert BaseConfig().transcripts is False
    assert {c.split for c in small_cases} == {"train", "val", "mine"}  # never eval or eval_novel
    primer = "\n".join(format_primer(small_cases, seed=0))
    prose = "\n".join(corpus_from_cases(small_cases))
    assert "<|assistant|>" not in primer + prose and "<tool_call>" in primer and "<tool_call>" not in prose
    whole_turns = [render_turn(c.gold) for c in small_cases if c.gold is not None]
    assert sum(turn in primer for turn in whole_turns) < len(whole_turns) / 4  # pairs only by chance of shuffling
    assert all("<|assistant|>" in doc for doc in transcripts(small_cases[:3]))


def test_build_base_saves_a_loadable_safetensors_model(tmp_path: Path):
    from toolprior.modeling import load_model, load_tokenizer

    config = BaseConfig(
        corpus_cases=30,
        vocab_size=600,
        hidden_size=32,
        intermediate_size=64,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
        seq_len=128,
        max_steps=6,
    )
    result = build_base(config, tmp_path / "base", progress=False)
    files = {p.name for p in (tmp_path / "base").iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    recipe = json.loads((tmp_path / "base" / "base_recipe.json").read_text())
    assert recipe["config"]["max_steps"] == 6 and recipe["steps"] == 6 and recipe["params"] == result.params
    assert torch.isfinite(torch.tensor(result.final_loss))
    tokenizer = load_tokenizer(tmp_path / "base")
    model = load_model(tmp_path / "base", quantize="none")
    ids = tokenizer("<think>x</think><clarify>Which?</clarify>", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    assert tokenizer.convert_tokens_to_ids("<clarify>") != tokenizer.unk_token_id


def test_train_base_cli_rejects_an_unknown_field(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "train", "base", "--out", str(tmp_path / "b"), "--set", "nope=1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()


def test_shipped_organism_base_is_the_default_recipe_and_loads_in_nf4():
    from toolprior.modeling import load_model, load_tokenizer
    from toolprior.organism import organism_base_path

    path = organism_base_path()
    recipe = json.loads((path / "base_recipe.json").read_text())
    assert recipe["config"] == BaseConfig(seed=0).to_dict()  # made by REBUILD_COMMAND with today's defaults
    assert (path / "model.safetensors").stat().st_size <= 10 * 2**20
    tokenizer = load_tokenizer("organism")
    model = load_model("organism", quantize="nf4")
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}
    ids = tokenizer(["<|user|>\nCheck SHP-1030.<|end|>\n<|assistant|>\n"], return_tensors="pt").input_ids
    assert torch.isfinite(model(input_ids=ids).logits).all()
