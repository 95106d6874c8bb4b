"""README's five-line example (capture -> vector -> steer -> save -> load) runs as written, on the tiny model."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from toolprior.steering import SteeringVector

README = Path(__file__).resolve().parents[1] / "README.md"


def five_lines() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- five-lines -->\n```python\n(.*?)```", text, re.S)
    assert match, "README has no <!-- five-lines --> python block"
    return match.group(1)


def test_the_block_is_five_lines():
    assert len([line for line in five_lines().splitlines() if line.strip()]) == 5


def test_readme_five_lines_run(tmp_path, monkeypatch, tiny_model, tiny_tokenizer):
    monkeypatch.chdir(tmp_path)
    scope = {"model": tiny_model, "tokenizer": tiny_tokenizer}
    exec(compile(five_lines(), str(README), "exec"), scope)
    loaded = scope["vector"]
    assert isinstance(loaded, SteeringVector) and loaded.layers == [1]
    assert (tmp_path / "clarify_vector" / "steering_vector.safetensors").is_file()
    assert loaded[1].norm() > 0
    assert scope["out"].shape[1] > 1
    # The steering hooks came out: the model's logits are the unsteered ones again.
    ids = tiny_tokenizer(["Hi"], return_tensors="pt")
    with torch.no_grad():
        after = tiny_model(**ids).logits
        with loaded.apply(tiny_model, alpha=4.0):
            steered = tiny_model(**ids).logits
        again = tiny_model(**ids).logits
    assert torch.equal(after, again) and not torch.equal(after, steered)
