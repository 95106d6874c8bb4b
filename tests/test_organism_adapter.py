"""The shipped organism adapter (experiments/organism/smollm2) is the one its sidecar says: trained with today's
sft_smollm2.yaml, on the train and val files the benchmark generator writes for seed 7, on the prepared SmolLM2; and a
study refuses it when any of those differ."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from toolprior.errors import InputError
from toolprior.experiments.organism_adapter import (
    ORGANISM_DIR,
    SIDECAR,
    config_hash,
    config_identity,
    file_sha256,
    install,
    load_sft_config,
    read_sidecar,
    verify,
)
from toolprior.training.benchmark import write_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def seed7_benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench7")
    write_benchmark(out, seed=json.loads((ORGANISM_DIR / SIDECAR).read_text())["data"]["seed"])
    return out


def test_sidecar_matches_the_shipped_sft_config():
    sidecar = read_sidecar(ORGANISM_DIR)
    assert sidecar["config_hash"] == config_hash(config_identity(load_sft_config()))
    assert sidecar["sft_config"] == "experiments/configs/sft_smollm2.yaml" and sidecar["base"] == "smollm2"
    # the fingerprint's id alone: a folder path in it would differ on every machine (a fresh clone caught that)
    assert re.fullmatch(r"[0-9a-f]{16}", sidecar["base_fingerprint"])


def test_sidecar_names_the_train_and_val_files_the_generator_writes(seed7_benchmark):
    sidecar = read_sidecar(ORGANISM_DIR)
    assert file_sha256(seed7_benchmark / "train.jsonl") == sidecar["data"]["train_sha256"]
    assert file_sha256(seed7_benchmark / "val.jsonl") == sidecar["data"]["val_sha256"]


def test_verify_accepts_the_shipped_adapter_on_its_base_and_data(seed7_benchmark, smollm2_folder):
    assert verify(ORGANISM_DIR, load_sft_config(), seed7_benchmark)["config_hash"]


def test_verify_names_a_changed_setting(seed7_benchmark, smollm2_folder):
    with pytest.raises(InputError, match=r"lora\.r"):
        verify(ORGANISM_DIR, load_sft_config(overrides=["lora.r=8"]), seed7_benchmark)


def test_verify_refuses_other_train_data(seed7_benchmark, tmp_path, smollm2_folder):
    data = tmp_path / "data"
    shutil.copytree(seed7_benchmark, data)
    lines = (data / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[1:]) + "\n")  # one case fewer
    with pytest.raises(InputError, match=r"train_sha256"):
        verify(ORGANISM_DIR, load_sft_config(), data)


def test_a_folder_without_its_weights_is_refused(tmp_path):
    folder = tmp_path / "organism"
    shutil.copytree(ORGANISM_DIR, folder)
    (folder / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(InputError, match=r"adapter_model\.safetensors"):
        read_sidecar(folder)


def test_installed_adapter_loads_on_smollm2_and_changes_its_outputs(tmp_path, smollm2_folder):
    from toolprior.modeling import load_model, load_tokenizer

    install(ORGANISM_DIR, tmp_path / "sft" / "adapter")
    tokenizer = load_tokenizer(smollm2_folder)
    batch = tokenizer(["<think>The user gave the account ID.</think>"], return_tensors="pt")
    base = load_model(smollm2_folder, quantize="none", dtype="bfloat16")
    agent = load_model(smollm2_folder, quantize="none", dtype="bfloat16", adapter=tmp_path / "sft" / "adapter")
    with torch.no_grad():
        before, after = base(**batch).logits, agent(**batch).logits
    assert before.shape == after.shape and not torch.allclose(before, after)  # the trained adapter is applied
