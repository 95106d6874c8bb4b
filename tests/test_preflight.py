"""LoRA preflight on real tiny models of each architecture: what PEFT reaches, counted exactly, refused when short."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from toolprior.cli import main as cli_main
from toolprior.commands.train import parse_targets
from toolprior.errors import InputError
from toolprior.training.linear_inventory import linear_inventory
from toolprior.training.preflight import peft_trainable_count, preflight
from toolprior.training.preflight_report import PreflightError, check_or_raise
from toolprior.training.tiny_configs import TINY_ARCHS, build_model, full_size_config, tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]
QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
DELTANET = ["in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def models():
    cache: dict[str, torch.nn.Module] = {}

    def get(arch: str) -> torch.nn.Module:
        if arch not in cache:
            cache[arch] = tiny_model(arch)
        return cache[arch]

    return get


def test_qkvo_on_qwen3_5_is_flagged(models):
    model = models("qwen3_5")
    report = preflight(model, QKVO, r=8)
    assert not report.ok
    assert report.coverage < 0.2
    assert set(DELTANET) <= set(report.missed_kinds)
    assert {"gate_proj", "up_proj", "down_proj"} <= set(report.missed_kinds)
    assert report.missed_kinds[:5] == DELTANET  # table order: attention, DeltaNet, MLP
    row = {r.kind: r for r in report.rows}
    assert row["q_proj"].count == 1 and row["in_proj_qkv"].count == 3  # one full-attention layer, three DeltaNet
    with pytest.raises(PreflightError) as err:
        check_or_raise(report, source="tiny:qwen3_5")
    assert isinstance(err.value, InputError)
    message = str(err.value)
    assert "\n" not in message and "in_proj_qkv" in message and "use all-linear or pass --force" in message
    assert check_or_raise(report, force=True) is report
    assert "REFUSED" in report.format() and "in_proj_z" in report.format()


@pytest.mark.parametrize("arch", ["llama", "qwen3", "qwen3_5", "gemma4", "gemma4_mm", "qwen3_moe"])
def test_all_linear_reaches_the_whole_decoder(models, arch):
    report = preflight(models(arch), "all-linear", r=8)
    assert report.ok, report.format()
    assert report.coverage == 1.0
    assert report.missed_kinds == []
    check_or_raise(report)


def test_qwen3_5_all_linear_reaches_every_deltanet_kind(models):
    report = preflight(models("qwen3_5"), "all-linear", r=8)
    reached = {r.kind for r in report.rows if r.reached == r.count}
    assert set(DELTANET) | set(QKVO) | {"gate_proj", "up_proj", "down_proj"} == reached


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("targets", ["all-linear", "qkvo"])
def test_analytic_lora_count_equals_peft(models, arch, targets):
    target_modules = "all-linear" if targets == "all-linear" else QKVO
    model = models(arch)
    report = preflight(model, target_modules, r=4)
    config = LoraConfig(r=4, target_modules=target_modules, lora_dropout=0.0)
    if report.refusals:  # Gemma 4 with its vision tower: q_proj names a Gemma4ClippableLinear
        with pytest.raises(ValueError, match="Gemma4ClippableLinear"):
            peft_trainable_count(model, config)
        return
    assert report.lora_params == peft_trainable_count(model, config)


def test_gemma4_text_decoder_has_plain_linears(models):
    # transformers 5.23: Gemma4ClippableLinear is used by the vision and audio towers only
    inventory = linear_inventory(models("gemma4"))
    assert inventory and not any(e.wrapped for e in inventory)
    assert {e.kind for e in inventory} >= {"q_proj", "per_layer_input_gate", "per_layer_projection"}


def test_gemma4_wrapped_linears_are_found_counted_once_and_reached_by_all_linear(models):
    model = models("gemma4_mm")
    everything = linear_inventory(model, decoder_only=False)
    wrapped = [e for e in everything if e.module_type == "Gemma4ClippableLinear"]
    assert len(wrapped) == 7 and all(e.wrapped and not e.in_decoder for e in wrapped)
    names = {e.name for e in everything}
    for e in wrapped:
        inner = model.get_submodule(e.inner)
        assert isinstance(inner, torch.nn.Linear)
        assert e.inner not in names  # the inner linear is not counted a second time
        assert e.params == inner.in_features * inner.out_features
    assert not any(e.in_decoder is False for e in linear_inventory(model))  # default: decoder blocks only

    report = preflight(model, "all-linear", r=4)
    assert report.ok and report.outside_wrapped_reached == 7
    assert any("Gemma4ClippableLinear" in note for note in report.notes)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules="all-linear"))
    for e in wrapped:  # PEFT really wraps the inner nn.Linear, not the wrapper
        assert hasattr(peft_model.base_model.model.get_submodule(e.inner), "lora_A")
        assert not hasattr(peft_model.base_model.model.get_submodule(e.name), "lora_A")


def test_gemma4_qkvo_names_the_wrappers_and_peft_refuses(models):
    model = models("gemma4_mm")
    report = preflight(model, QKVO, r=4)
    assert report.refusals and {r.module_type for r in report.refusals} == {"Gemma4ClippableLinear"}
    with pytest.raises(PreflightError, match="Gemma4ClippableLinear"):
        check_or_raise(report, force=True)  # --force cannot get past PEFT's own refusal
    with pytest.raises(ValueError, match="Gemma4ClippableLinear"):
        get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=QKVO))
    # the usual fix, a regex restricted to the language model, passes and is counted exactly
    regex = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    fixed = preflight(model, regex, r=4)
    assert fixed.ok and not fixed.refusals
    assert fixed.lora_params == peft_trainable_count(model, LoraConfig(r=4, target_modules=regex))


def test_qwen3_moe_experts_are_fused_and_reached_through_peft_conversion(models):
    model = models("qwen3_moe")
    fused = [e for e in linear_inventory(model) if e.form == "fused"]
    assert {e.kind for e in fused} == {"experts.gate_up_proj", "experts.down_proj"}
    assert all(e.num_experts == 8 and e.module_type == "Qwen3MoeExperts" for e in fused)
    assert not isinstance(model.get_submodule("model.layers.0.mlp.experts"), torch.nn.Linear)
    report = preflight(model, "all-linear", r=4)
    assert report.ok and report.coverage == 1.0
    assert {"gate_up_proj", "down_proj"} <= set(report.effective_target_parameters)
    assert 8 in report.rank_pattern.values()  # PEFT doubles the rank of the fused gate_up_proj
    assert any("fused 3-D parameters" in note for note in report.notes)
    # an attention-only list misses the experts, and all-linear is the suggested fix
    qkvo = preflight(model, QKVO, r=4)
    assert not qkvo.ok and "experts.gate_up_proj" in qkvo.missed_kinds
    assert "use all-linear" in qkvo.message()


@pytest.mark.parametrize("arch", ["qwen3_5_moe", "gemma4_moe"])
def test_experts_missed_by_all_linear_where_peft_has_no_conversion(models, arch):
    model = models(arch)
    report = preflight(model, "all-linear", r=4)
    assert not report.ok
    assert {"experts.gate_up_proj", "experts.down_proj"} <= set(report.missed_kinds)
    assert "--target-parameters" in report.message() and "experts.gate_up_proj" in report.message()
    assert any("not reachable by target_modules" in note for note in report.notes)
    params = [report.param_targets[k] for k in report.missed_kinds if k in report.param_targets]
    fixed = preflight(model, "all-linear", r=4, target_parameters=params)
    assert fixed.ok and fixed.coverage == 1.0
    config = LoraConfig(r=4, target_modules="all-linear", target_parameters=params, lora_dropout=0.0)
    assert fixed.lora_params == peft_trainable_count(model, config)


def test_full_size_qwen3_5_4b_on_meta_in_seconds():
    start = time.monotonic()
    model = build_model(full_size_config("qwen3_5_4b"), device="meta")
    assert all(p.is_meta for p in model.parameters())
    report = preflight(model, "all-linear", r=32)
    qkvo = preflight(model, QKVO, r=32)
    assert time.monotonic() - start < 20
    assert report.ok and report.decoder_linear_params > 3_000_000_000
    assert [r.count for r in report.rows if r.kind in ("q_proj", "in_proj_qkv")] == [8, 24]
    assert not qkvo.ok and qkvo.coverage < 0.1
    assert report.lora_params == peft_trainable_count(model, LoraConfig(r=32, target_modules="all-linear"))
    assert all(p.is_meta for p in model.parameters())


def test_4bit_nf4_model(tmp_path, models):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    models("llama").save_pretrained(tmp_path)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant, dtype=torch.float32)
    inventory = linear_inventory(model)
    assert inventory and all(e.is_4bit and e.module_type == "Linear4bit" for e in inventory)
    assert model.model.layers[0].self_attn.q_proj.weight.shape[1] == 1  # packed: shape says nothing
    plain = linear_inventory(models("llama"))
    assert [(e.name, e.in_features, e.out_features) for e in inventory] == [
        (e.name, e.in_features, e.out_features) for e in plain
    ]
    report = preflight(model, "all-linear", r=8)
    assert report.ok and report.lora_params == preflight(models("llama"), "all-linear", r=8).lora_params
    assert report.lora_params == peft_trainable_count(model, LoraConfig(r=8, target_modules="all-linear"))
    assert "Linear4bit" in report.format()


@pytest.mark.parametrize("arch", ["qwen3_moe", "gemma4_mm"])
def test_inventory_sees_through_peft_wrappers(models, arch):
    model = models(arch)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.0))
    assert linear_inventory(peft_model, decoder_only=False) == linear_inventory(model, decoder_only=False)


def test_exclude_modules_matches_peft(models):
    model = models("gemma4_mm")
    exclude = r".*(vision_tower|embed_vision).*"
    report = preflight(model, "all-linear", r=4, exclude_modules=exclude)
    assert report.ok and report.outside_wrapped_reached == 0
    config = LoraConfig(r=4, target_modules="all-linear", exclude_modules=exclude)
    assert report.lora_params == peft_trainable_count(model, config)


def test_parse_targets():
    assert parse_targets("all-linear") == "all-linear"
    assert parse_targets("q_proj, k_proj") == ["q_proj", "k_proj"]
    assert parse_targets("self_attn.q_proj") == ["self_attn.q_proj"]
    assert parse_targets(r".*\.(q_proj|v_proj)") == r".*\.(q_proj|v_proj)"


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "toolprior.cli", "preflight", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


def test_cli_refuses_with_one_line_and_no_traceback():
    result = _run_cli("tiny:qwen3_5", "--target-modules", "q_proj,k_proj,v_proj,o_proj", "--r", "32", "--meta")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: tiny:qwen3_5: target_modules ['q_proj', 'k_proj', 'v_proj', 'o_proj'] reach ")
    assert "in_proj_qkv" in lines[0] and "Traceback" not in result.stderr
    assert "in_proj_qkv" in result.stdout  # the table is still printed


def test_cli_force_and_all_linear_exit_0(capsys):
    assert cli_main(["preflight", "tiny:qwen3_5", "--target-modules", "q_proj,k_proj,v_proj,o_proj", "--force"]) == 0
    out = capsys.readouterr().out
    assert "accepted with --force" in out and "coverage:" in out
    assert cli_main(["preflight", "tiny:qwen3_5", "--target-modules", "all-linear", "--meta"]) == 0
    assert "verdict: OK" in capsys.readouterr().out


def test_cli_local_checkpoint_config_only(tmp_path, capsys):
    from toolprior.training.tiny_configs import tiny_config

    tiny_config("qwen3_5").save_pretrained(tmp_path)  # config.json only, no weights
    assert cli_main(["preflight", str(tmp_path), "--target-modules", "all-linear", "--r", "16"]) == 0
    assert "Qwen3_5ForCausalLM" in capsys.readouterr().out
    assert cli_main(["preflight", str(tmp_path), "--target-modules", "q_proj,v_proj"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path}: ")
    assert cli_main(["preflight", str(tmp_path / "missing")]) == 2
    assert "never downloads" in capsys.readouterr().err
