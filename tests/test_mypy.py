"""mypy on the package, checked on every `make test` (the settings are pyproject.toml's [tool.mypy]), and the model
and tokenizer protocols the public entry points are typed with (`toolprior.model_protocols`) against real objects.

mypy checks the card's folders as `toolprior.<folder>`, through the links toolprior/<folder> -> ../<folder>; its
cache (.mypy_cache) makes a rerun take seconds, a first run about a minute.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from typing_extensions import get_protocol_members

from tests.conftest import make_tiny_qwen3
from toolprior.model_protocols import CausalLM, CausalLMOutput, Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_package():
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is missing: `make install` puts mypy (a dev dependency) in .venv")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "toolprior"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, "mypy -p toolprior:\n" + done.stdout[-6000:] + done.stderr[-2000:]


def _missing(obj: object, protocol: type) -> list[str]:
    return sorted(name for name in get_protocol_members(protocol) if not hasattr(obj, name))


def test_real_models_and_tokenizers_have_every_protocol_member(tiny_tokenizer):
    """What mypy cannot see: the members exist at run time on a transformers model, the same model under a PEFT
    adapter, a forward pass's output and a tokenizer (mypy checks their declared types in toolprior.modeling)."""
    model = make_tiny_qwen3(tiny_tokenizer)  # its own copy: PEFT changes the model it wraps
    adapted = get_peft_model(make_tiny_qwen3(tiny_tokenizer), LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        output = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert _missing(model, CausalLM) == []
    assert _missing(adapted, CausalLM) == []
    assert _missing(output, CausalLMOutput) == []
    assert _missing(tiny_tokenizer, Tokenizer) == []
