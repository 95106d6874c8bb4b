"""Applying a steering vector during a forward pass or a whole generation, as a context manager.

    with steer(model, vector, alpha=4.0):                          # every real position, every layer of the vector
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=64)

    with steer(model, vector, alpha=torch.tensor([0.0, 2.0, 4.0]), positions="from_decision", tokenizer=tok):
        ...                                                        # one alpha per batch row

    generate(model, tok, prompts, steer=steering_factory(model, vector, 4.0))   # evals.generation / evals.harness

How: plain PyTorch forward hooks on the decoder blocks the vector names (their output is the residual stream
after the block, `blocks.{i}.hook_resid_post`), plus one forward PRE-hook on the module that owns the blocks
(LlamaModel, Qwen3Model, ...), which sees each forward pass's new token ids, its 2-D attention mask and its KV
cache before any block runs. Every handle is removed on exit, also when the block raises. All state (the column
count, each row's decision point) lives in the context object, one entry per batch row; nothing is stored on the
model, so every row is steered, each by its own alpha.

Positions (`positions=`), per row, over the columns of the padded sequence (prompt columns 0..P-1, generated
columns P, P+1, ...):

- ``all``           every real position: the row's prompt tokens and every generated token.
- ``prompt``        the row's real prompt tokens only (the last one predicts the first generated token).
- ``generated``     the positions holding generated tokens only. The FIRST generated token is predicted at the last
                    prompt position, so it is not steered under this rule; every later one is.
- ``from_decision`` from the row's decision position on (`toolprior.decision_point`: the last token of P, the
                    tokens every `</think><tag>` shares; the `</think>` token on the organism, the `<` after it
                    where the tags are split), whether it sits in the prompt (a forced think) or is generated;
                    before it, nothing. It is where probes read the decision ("decision" in `probes.positions`)
                    and where the next-token logits choose the action, so steering from there is what moves the
                    choice. The row must hold P's tokens as they are: a `</think>` followed by something else
                    (whitespace, or a tokenization of `</think><` other than P's) starts nothing. In the prompt,
                    only a decision of the turn being written counts: one followed by an end-of-turn token (an
                    earlier turn of a multi-turn history) does not. Needs `tokenizer=`.

Padding is never touched: a position is real when the forward pass's 2-D attention mask says so (the mask
`generate` passes grows by one column per step), else when the `batch` / `attention_mask` given here says so.

Under a KV cache each decode step runs one new column per row. The column offset of a forward pass is the mask's
width minus the new tokens, or, without a 2-D mask, the length of the cache it was given (found by type, not by
keyword: see `toolprior.forward_contract`; transformers 5.25 renamed the keyword and drops a mask that holds no
padding), so "prompt" vs "generated" and the decision column are exact at every step, and a forward pass that
starts a new sequence (offset 0, or no cache) starts the bookkeeping afresh.

Operators (`operator=`, or any function `(h, v, alpha) -> h'`): ``add`` h + alpha v; ``ablate`` h - (h.u)u with
u = v/|v| (alpha unused); ``ablate_then_add`` the two in turn. `keep_norm=True` rescales each steered position
back to its original norm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from toolprior.decision_point import decision_tokens
from toolprior.forward_contract import cached_length
from toolprior.generation_batch import GenerationBatch
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import decoder_layers
from toolprior.probes.hook_points import first_tensor
from toolprior.steering.layer_vectors import LayerVectors
from toolprior.steering.operators import Alpha, Operator, get_operator, steer_hidden
from toolprior.steering.positions import POSITIONS, PositionTracker
from toolprior.stop_tokens import stop_token_ids

# ------------------------------------------------------------------------------------------------------ the context


def decoder_owner(model: CausalLM) -> nn.Module:
    """The module whose direct child is the ModuleList of decoder blocks (LlamaModel, Qwen3Model, ...)."""
    blocks = decoder_layers(model)
    for module in model.modules():
        if any(child is blocks for child in module.children()):
            return module
    raise ValueError(f"could not find the module holding the decoder blocks of {type(model).__name__}")


def _replace_first(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    if isinstance(output, tuple):
        return (new, *output[1:])
    if isinstance(output, list):
        return [new, *output[1:]]
    raise TypeError(f"cannot steer a block whose output is a {type(output).__name__}")


def _owner_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """input_ids, attention_mask, the shape (B, T) and the cached length of one forward call of the block owner."""
    input_ids = kwargs.get("input_ids")
    if input_ids is None and args and isinstance(args[0], torch.Tensor) and not args[0].is_floating_point():
        input_ids = args[0]
    embeds = kwargs.get("inputs_embeds")
    if input_ids is not None:
        shape = tuple(input_ids.shape[:2])
    elif isinstance(embeds, torch.Tensor):
        shape = tuple(embeds.shape[:2])
    else:
        raise RuntimeError("cannot steer: the decoder was called without input_ids or inputs_embeds")
    # the cache whatever its keyword (`cache` from transformers 5.25, `past_key_values` before)
    return {
        "shape": shape,
        "input_ids": input_ids,
        "attention_mask": kwargs.get("attention_mask"),
        "past_length": cached_length(kwargs),
    }


def _alpha_tensor(alpha: Alpha) -> torch.Tensor | float:
    if isinstance(alpha, (int, float)):
        return float(alpha)
    tensor = torch.as_tensor(alpha, dtype=torch.float32).detach().to("cpu")
    if tensor.dim() == 0:
        return float(tensor)
    if tensor.dim() != 1:
        raise ValueError(f"alpha must be a number or a 1-D tensor (one value per row), got shape {tuple(tensor.shape)}")
    return tensor


class Steering:
    """The context `steer` returns: hooks in on enter, out on exit (see the module docstring). Per-forward state
    is in `tracker`; `layers` are the blocks steered."""

    def __init__(
        self,
        model: CausalLM,
        vector: LayerVectors,
        alpha: Alpha = 1.0,
        *,
        positions: str = "all",
        operator: str | Operator = "add",
        keep_norm: bool = False,
        batch: GenerationBatch | None = None,
        attention_mask: torch.Tensor | None = None,
        layers: Iterable[int] | None = None,
        tokenizer: Tokenizer | None = None,
        rows: torch.Tensor | Sequence[bool] | None = None,
    ) -> None:
        if positions not in POSITIONS:
            raise ValueError(f"unknown steering positions {positions!r}; expected one of {', '.join(POSITIONS)}")
        if vector.hook != "resid_post":
            raise ValueError(f"only resid_post vectors can be applied, not {vector.hook!r}")
        self.model = model
        self.vector = vector if layers is None else vector.only(layers)
        self.alpha = _alpha_tensor(alpha)
        self.positions = positions
        self.operator = get_operator(operator)
        self.keep_norm = keep_norm
        self.rows = None if rows is None else torch.as_tensor(rows, dtype=torch.bool).detach().to("cpu")
        blocks = decoder_layers(model)
        bad = [layer for layer in self.vector.layers if layer >= len(blocks)]
        if bad:
            raise ValueError(f"the vector has layer(s) {bad}; the model has {len(blocks)} blocks")
        if batch is not None and attention_mask is not None:
            raise ValueError("pass batch= or attention_mask=, not both")
        self._prompt_mask = batch.attention_mask if batch is not None else attention_mask
        self._prompt_ids = batch.input_ids if batch is not None else None
        self._decision: list[int] | None = None
        self._stops: list[int] = []
        if positions == "from_decision":
            if tokenizer is None:
                raise ValueError("positions='from_decision' needs tokenizer= (for the decision and end-of-turn ids)")

            self._decision = list(decision_tokens(tokenizer).shared)
            self._stops = stop_token_ids(model, tokenizer)
        self.tracker: PositionTracker | None = None
        self._handles: list[Any] = []
        self._on_device: tuple[Any, torch.Tensor, torch.Tensor, dict[int, torch.Tensor]] | None = None

    def new_tracker(self) -> PositionTracker:
        return PositionTracker(
            self.positions,
            prompt_mask=self._prompt_mask,
            prompt_ids=self._prompt_ids,
            decision_ids=self._decision,
            stops=self._stops,
        )

    def row_alpha(self, batch: int) -> torch.Tensor:
        """[B] alpha of each row (zero-steered rows keep their value; `rows` masks them out instead)."""
        if isinstance(self.alpha, float):
            return torch.full((batch,), self.alpha)
        if self.alpha.shape[0] != batch:
            raise ValueError(f"alpha has {self.alpha.shape[0]} values but the batch has {batch} rows")
        return self.alpha

    def edit(self, layer: int, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Block `layer`'s output `h` steered at `mask` (the [B, T] mask of the current forward pass)."""
        # One host-to-device copy of the mask and alphas per forward pass, shared by every steered block.
        key = (mask, h.device, h.dtype)  # holds the mask itself: compared by identity, never a recycled id
        cached = self._on_device
        if cached is None or cached[0][0] is not mask or cached[0][1:] != key[1:]:
            if self.rows is not None:
                if self.rows.shape[0] != h.shape[0]:
                    raise ValueError(f"rows has {self.rows.shape[0]} entries but the batch has {h.shape[0]} rows")
                mask = mask & self.rows.unsqueeze(1)
            alpha = self.row_alpha(h.shape[0]).to(device=h.device, dtype=h.dtype)
            cached = self._on_device = (key, mask.to(h.device), alpha, {})
        _, device_mask, alpha, vectors = cached
        if layer not in vectors:
            vectors[layer] = self.vector[layer].to(device=h.device, dtype=h.dtype)
        return steer_hidden(h, vectors[layer], alpha, device_mask, self.operator, self.keep_norm)

    def prefix_untouched(self) -> bool:
        """Whether this context leaves every prompt position before the last one as it is, so that part of the
        prompt's KV cache is the unsteered one and rows that repeat a prompt can share it (`evals.shared_prefill`):
        positions "generated", or "from_decision" where each row's decision point is the prompt's last token or
        comes after the prompt."""
        if self.positions == "generated":
            return True
        decisions = self._prompt_decisions()
        if self.positions != "from_decision" or decisions is None or self._prompt_ids is None:
            return False
        last = self._prompt_ids.shape[1] - 1
        return all(decision is None or decision == last for decision in decisions)

    def fork_token(self) -> int | None:
        """P's token id (`toolprior.decision_point`) when P is ONE token (`</think>` where the tags are single
        tokens), steering starts at the decision point and no row's decision lies in its prompt: then every row
        runs unsteered until it writes that token, and copies of a prompt can share everything up to it
        (`evals.generation` forks there). None otherwise, also where P is several tokens (`</think>` then `<`):
        a fork at one token would not be the decision position, so generation takes the slower unforked path,
        with the same outputs."""
        if self.positions != "from_decision" or self._decision is None or len(self._decision) != 1:
            return None
        decisions = self._prompt_decisions()
        if decisions is None or any(decision is not None for decision in decisions):
            return None
        return self._decision[0]

    def _prompt_decisions(self) -> list[int | None] | None:
        """Each row's decision column within its prompt ("from_decision" only; None when no prompt batch was
        given): the tracker run over the prompt as the first forward pass would see it."""
        if self.positions != "from_decision" or self._prompt_ids is None or self._prompt_mask is None:
            return None
        tracker = self.new_tracker()
        ids = self._prompt_ids.detach().to("cpu")
        tracker.begin((ids.shape[0], ids.shape[1]), input_ids=ids, attention_mask=self._prompt_mask.detach().to("cpu"))
        return tracker.decision

    def __enter__(self) -> Steering:
        if self._handles:
            raise RuntimeError("this steering context is already active")
        tracker = self.tracker = self.new_tracker()
        blocks = decoder_layers(self.model)

        def begin(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            tracker.begin(**_owner_inputs(args, kwargs))

        def end(module: nn.Module, args: Any, output: Any) -> None:
            tracker.current = None

        def make_hook(layer: int) -> Callable[..., Any]:
            def hook(module: nn.Module, args: Any, output: Any) -> Any:
                mask = tracker.current
                if mask is None:
                    raise RuntimeError(f"block {layer} ran outside a forward pass of the model the steering hooks see")
                return _replace_first(output, self.edit(layer, first_tensor(output), mask))

            return hook

        try:
            owner = decoder_owner(self.model)
            self._handles.append(owner.register_forward_pre_hook(begin, with_kwargs=True))
            self._handles.append(owner.register_forward_hook(end))
            for layer in self.vector.layers:
                self._handles.append(blocks[layer].register_forward_hook(make_hook(layer)))
        except BaseException:
            self._remove()
            raise
        return self

    def _remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __exit__(self, *exc: Any) -> None:
        self._remove()
        self.tracker = None


def steer(
    model: CausalLM,
    vector: LayerVectors,
    alpha: Alpha = 1.0,
    *,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    batch: GenerationBatch | None = None,
    attention_mask: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
    tokenizer: Tokenizer | None = None,
    rows: torch.Tensor | Sequence[bool] | None = None,
) -> Steering:
    """A context manager that steers `model` with `vector` while it is open (see the module docstring).

    alpha: a number, or one value per batch row (a whole alpha sweep in one batch: repeat each prompt per alpha).
    batch / attention_mask: the prompt batch (left padded) being run; needed only where the forward pass gets no
    2-D attention mask of its own. layers: steer only these layers of the vector. rows: [B] bool, rows to steer
    at all (conditional steering); the others are left untouched.

        with steer(model, vector, alpha=4.0, positions="from_decision", tokenizer=tokenizer):
            ids = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=64)
    """
    return Steering(
        model,
        vector,
        alpha,
        positions=positions,
        operator=operator,
        keep_norm=keep_norm,
        batch=batch,
        attention_mask=attention_mask,
        layers=layers,
        tokenizer=tokenizer,
        rows=rows,
    )


def steering_factory(
    model: CausalLM,
    vector: LayerVectors,
    alpha: Alpha = 1.0,
    *,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    layers: Iterable[int] | None = None,
    tokenizer: Tokenizer | None = None,
) -> Callable[[GenerationBatch], Steering]:
    """A `steer=` for `evals.generation.generate` / `evals.harness.evaluate`: batch -> steering context.

    A non-scalar `alpha` holds one value per PROMPT, in the caller's order (generate sorts prompts into batches;
    the factory picks each batch's values by `batch.rows`).

        verdicts = evaluate(model, tokenizer, cases, steer=steering_factory(model, vector, 4.0))
    """
    per_prompt = _alpha_tensor(alpha)
    selected = vector if layers is None else vector.only(layers)

    def factory(batch: GenerationBatch) -> Steering:
        value: Alpha
        if isinstance(per_prompt, float):
            value = per_prompt
        else:
            if max(batch.rows) >= per_prompt.shape[0]:
                raise ValueError(f"alpha has {per_prompt.shape[0]} values but prompt {max(batch.rows)} was given")
            value = per_prompt[list(batch.rows)]
        return steer(
            model,
            selected,
            value,
            positions=positions,
            operator=operator,
            keep_norm=keep_norm,
            batch=batch,
            tokenizer=tokenizer,
        )

    return factory
