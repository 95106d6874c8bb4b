"""What the code needs of a causal language model and of its tokenizer, as protocols.

The public entry points (`load_agent`, `evals.harness.evaluate`, `evals.generation.generate`, the names `probes` and
`steering` export) take any object with these members: a transformers `AutoModelForCausalLM` model, the same model
under a PEFT adapter, and a transformers tokenizer all have them, so nothing is registered or subclassed. mypy reads
them (`make test` runs it); nothing checks them at run time. Kept to what the code calls: a member joins when code
that takes a `CausalLM` or a `Tokenizer` needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import nn


class CausalLMOutput(Protocol):
    """What a forward pass returns (a transformers `CausalLMOutputWithPast`): the logits [B, T, vocab]."""

    @property
    def logits(self) -> torch.Tensor: ...


class CausalLM(Protocol):
    """A causal LM as an `nn.Module` with a transformers config: called on token ids it returns logits; its modules
    are where hooks go (the decoder blocks are found by `toolprior.modeling.decoder_layers`)."""

    @property
    def config(self) -> Any:
        """A transformers `PretrainedConfig`; its fields differ by architecture and are read by name."""
        ...

    @property
    def device(self) -> torch.device:
        """Where its (first) parameters are: where inputs go."""
        ...

    def __call__(self, *args: Any, **kwargs: Any) -> CausalLMOutput: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """transformers' `GenerationMixin.generate`: token ids [B, T + new], or a `GenerateOutput` when asked."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, nn.Parameter]]: ...

    def modules(self) -> Iterator[nn.Module]: ...

    def named_modules(
        self, memo: set[nn.Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, nn.Module]]: ...

    def get_submodule(self, target: str) -> nn.Module: ...

    def get_output_embeddings(self) -> nn.Module | None:
        """The LM head, or None for a model without one."""
        ...

    def eval(self) -> CausalLM:
        """The model itself, in inference mode (dropout off)."""
        ...


class Tokenizer(Protocol):
    """A transformers tokenizer (`PreTrainedTokenizerBase`) with a chat template."""

    padding_side: str

    @property
    def pad_token_id(self) -> int | None: ...

    @property
    def eos_token_id(self) -> int | None: ...

    def __call__(self, text: str | list[str], *args: Any, **kwargs: Any) -> Any:
        """A `BatchEncoding`: a mapping with `input_ids` and `attention_mask` (tensors with `return_tensors="pt"`)."""
        ...

    def decode(self, token_ids: int | list[int] | torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """The text of one sequence of ids (transformers types it `str | list[str]`)."""
        ...

    def apply_chat_template(self, conversation: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        """The prompt text with `tokenize=False` (ids otherwise)."""
        ...


__all__ = ["CausalLM", "CausalLMOutput", "Tokenizer"]
