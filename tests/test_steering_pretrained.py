"""Shareable vector folders: `SteeringVector.save_pretrained` / `from_pretrained` (PEFT-adapter-like layout)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.test_gguf_io import make_tiny_llama
from toolprior.cli import main
from toolprior.errors import InputError
from toolprior.steering.vector import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, SteeringVector, vector_meta

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return make_tiny_llama()


@pytest.fixture()
def vector(llama) -> SteeringVector:
    meta = vector_meta(
        llama,
        method="pca_paired",
        source="twins",
        position="decision",
        split="mine",
        study="organism-demo",
        positive="clarify",
        negative="call_tool",
    )
    generator = torch.Generator().manual_seed(0)
    return SteeringVector({1: torch.randn(64, generator=generator), 2: torch.randn(64, generator=generator)}, meta=meta)


def test_save_pretrained_round_trip_and_card(tmp_path, llama, vector):
    folder = vector.save_pretrained(tmp_path / "clarify-vector")
    assert sorted(p.name for p in folder.iterdir()) == sorted([WEIGHTS_NAME, CONFIG_NAME, CARD_NAME])
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["layers"] == [1, 2] and config["hook"] == "resid_post" and config["d_model"] == 64
    assert config["meta"]["fingerprint"]["id"] == vector.meta["fingerprint"]["id"]

    back = SteeringVector.from_pretrained(folder, model=llama)
    assert back.layers == vector.layers and all(torch.equal(back[k], vector[k]) for k in vector.layers)
    assert back.meta == json.loads(json.dumps(vector.meta))

    card = (folder / CARD_NAME).read_text()
    fingerprint = vector.meta["fingerprint"]
    for expected in (
        fingerprint["id"],
        "LlamaForCausalLM",
        "| steered layers | 1, 2 |",
        "| method | pca_paired |",
        "| data split | mine |",
        "| study | organism-demo |",
        "clarify - call_tool",
        'SteeringVector.from_pretrained("clarify-vector"',
    ):
        assert expected in card, expected
    assert card.startswith("---\nlibrary_name: toolprior\n")


def test_a_folder_moved_to_another_place_loads(tmp_path, llama, vector):
    written = vector.save_pretrained(tmp_path / "machine_a" / "vec")
    moved = shutil.move(str(written), str(tmp_path / "machine_b" / "elsewhere"))
    shutil.rmtree(tmp_path / "machine_a")
    assert str(tmp_path / "machine_a") not in (tmp_path / "machine_b" / "elsewhere" / CONFIG_NAME).read_text()
    back = SteeringVector.from_pretrained(moved, model=llama)
    assert torch.equal(back[2], vector[2])


def test_from_pretrained_refuses_another_model_with_one_line(tmp_path, vector):
    folder = vector.save_pretrained(tmp_path / "vec")
    other = make_tiny_llama()  # same shape, other weights
    with torch.no_grad():
        other.model.norm.weight.mul_(2.0)
    with pytest.raises(InputError, match="computed on model") as err:
        SteeringVector.from_pretrained(folder, model=other)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)
    assert "fingerprint" in str(err.value) and WEIGHTS_NAME in str(err.value)


def test_from_pretrained_names_what_is_missing(tmp_path, vector):
    with pytest.raises(InputError, match="no such steering vector folder"):
        SteeringVector.from_pretrained(tmp_path / "nowhere")
    folder = vector.save_pretrained(tmp_path / "vec")
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(InputError, match=f"{CONFIG_NAME}: missing"):
        SteeringVector.from_pretrained(folder)


def test_cli_exports_a_folder_and_imports_it(tmp_path, capsys, llama, vector):
    source = vector.save(tmp_path / "v.safetensors")
    assert main(["steer", "export", "--format", "folder", str(source), str(tmp_path / "shared")]) == 0
    assert main(["steer", "import", str(tmp_path / "shared"), str(tmp_path / "back.safetensors")]) == 0
    back = SteeringVector.load(tmp_path / "back.safetensors", model=llama)
    assert all(torch.equal(back[k], vector[k]) for k in vector.layers)
    assert main(["steer", "export", "--format", "folder", "--alpha", "2", str(source), str(tmp_path / "x")]) == 2
    assert "--format gguf only" in capsys.readouterr().err
