"""Logit lens at the decision point: each block's residual stream read through the model's own final norm and
unembedding, to see at which depth the call-tool prior appears.

    lens = logit_lens(model, tokenizer, cases)          # position "decision": see toolprior.decision_point
    lens.per_action()["clarify"]                         # [n_layers] mean prior gap of the clarify cases
    lens.final_max_abs_diff                              # lens at the last block vs the model's real logits

The prior gap of a case at block i is logit_i(decision token of `<tool_call>`) - logit_i(decision token of the
correct action's tag), read at the decision position (the last token every `</think><tag>` shares: `</think>` on
the organism, the `<` after it where the tags are split; `toolprior.decision_point`, `action_tag_token_ids`):
positive = the model leans toward calling a tool when it should not. For call_tool cases it is 0 by definition;
`margin` (logit of the correct tag minus the best other tag) is reported alongside for every case.

The lens applies exactly what the model applies after its last block: the final norm (`final_norm`: the norm of
the module holding the decoder blocks, found generically for Llama, Qwen3, Qwen3.5, Gemma 4, through PEFT
wrappers), the output embedding (`model.get_output_embeddings()`), then Gemma's final logit soft-capping where
the config sets one. At the last block this must reproduce the model's logits; `LensResult.final_max_abs_diff`
says how closely it does (0 up to float error), so an architecture with an unknown extra step shows up at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from toolprior.actions import ACTIONS, Action
from toolprior.decision_point import decision_tokens
from toolprior.decoder_config import text_config
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import model_device, pad_left, pad_token_id
from toolprior.probes.capture import case_texts
from toolprior.probes.hook_points import first_tensor
from toolprior.probes.positions import THINK_RULES, compute_positions, think_token_ids
from toolprior.tokenizer import action_tag_token_ids

if TYPE_CHECKING:
    from toolprior.cases import Case

_NORM_NAMES = ("norm", "final_layernorm", "final_norm", "ln_f", "norm_f")


def _decoder_parent(model: CausalLM) -> nn.Module:
    layers = decoder_layers(model)
    for name, module in model.named_modules():
        if module is layers:
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            return model.get_submodule(parent)  # "": the model itself
    raise ValueError(f"could not find the module holding the decoder blocks of {type(model).__name__}")


def final_norm(model: CausalLM) -> nn.Module:
    """The norm applied to the last block's output before the LM head: the `norm` (or `final_layernorm`, `ln_f`, ...)
    of the module that holds the decoder blocks (`model.model.norm` on Llama / Qwen3 / Qwen3.5 / Gemma 4 text,
    `model.model.language_model.norm` on Gemma 4 multimodal)."""
    parent = _decoder_parent(model)
    for name in _NORM_NAMES:
        module = getattr(parent, name, None)
        if isinstance(module, nn.Module):
            return module
    children = ", ".join(n for n, _ in parent.named_children())
    raise ValueError(f"no final norm in {type(parent).__name__} (children: {children})")


def logit_softcap(model: CausalLM) -> float | None:
    """Gemma's `final_logit_softcapping` (logits = cap * tanh(logits / cap)), or None."""
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    return float(cap) if cap else None


def unembed(model: CausalLM, resid: torch.Tensor, token_ids: Sequence[int] | None = None) -> torch.Tensor:
    """Logits from residual-stream states [..., d]: final norm, output embedding, soft-cap. With `token_ids`, only
    those vocabulary entries ([..., len(token_ids)]; exact, the soft-cap is elementwise)."""
    norm = final_norm(model)
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings")
    weight = getattr(head, "weight", None)
    normed = norm(resid)
    if token_ids is not None and isinstance(head, nn.Linear) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=weight.device)
        bias = head.bias[ids] if head.bias is not None else None
        logits = F.linear(normed.to(weight.dtype), weight[ids], bias)
    else:
        logits = head(normed)
        if token_ids is not None:
            logits = logits[..., list(token_ids)]
    cap = logit_softcap(model)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def forward_logits(
    model: CausalLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    keep: torch.Tensor,
) -> torch.Tensor:
    """The model's real logits at sequence indices `keep` ([B, len(keep), V]). Passes `logits_to_keep` as a tensor
    (an integer would let Gemma 4 drop positions inside KV-shared layers); models without it get full logits."""
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "use_cache": False,
    }
    try:
        out = model(**kwargs, logits_to_keep=keep)
        logits = out.logits
        if logits.shape[1] == len(keep):
            return logits
        return logits[:, keep]
    except TypeError:
        return model(**kwargs).logits[:, keep]


@contextlib.contextmanager
def block_outputs(model: CausalLM, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Forward hooks keeping each listed block's full output [B, T, d] for the block; removed on exit."""
    blocks = decoder_layers(model)
    store: dict[int, torch.Tensor] = {}
    handles = []

    def make(i: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            store[i] = first_tensor(output)

        return hook

    try:
        for i in layers:
            handles.append(blocks[i].register_forward_hook(make(i)))
        yield store
    finally:
        for h in handles:
            h.remove()


@dataclass
class LensResult:
    """The prior gap per block and case at one position.

    `gap[l, i]` = logit(<tool_call>) - logit(correct tag) of case i read through block `layers[l]`; `tag_logits`
    [L, N, 5] holds the five action tags' lens logits (ACTIONS order); `final_gap` [N] is the gap from the model's
    real logits; `final_max_abs_diff` the largest |lens at the last block - real logits| over the whole vocabulary."""

    layers: list[int]
    case_ids: list[str]
    labels: list[str]
    position: str
    tag_logits: torch.Tensor
    final_logits: torch.Tensor
    final_max_abs_diff: float

    @property
    def gap(self) -> torch.Tensor:
        return _gap(self.tag_logits, self.labels)

    @property
    def margin(self) -> torch.Tensor:
        """[L, N] logit of the correct tag minus the best other tag (> 0: the lens would pick the right action)."""
        index = torch.as_tensor([ACTIONS.index(Action(a)) for a in self.labels])
        correct = self.tag_logits[:, torch.arange(len(index)), index]
        others = self.tag_logits.clone()
        others[:, torch.arange(len(index)), index] = -math.inf
        return correct - others.max(dim=2).values

    @property
    def final_gap(self) -> torch.Tensor:
        return _gap(self.final_logits[None], self.labels)[0]

    def per_action(self) -> dict[str, list[float]]:
        """Mean gap per expected action, per block: {action: [L]} (actions with cases only)."""
        gap = self.gap
        out: dict[str, list[float]] = {}
        for action in ACTIONS:
            cols = [i for i, a in enumerate(self.labels) if a == action.value]
            if cols:
                out[action.value] = gap[:, cols].mean(dim=1).tolist()
        return out

    def to_dict(self) -> dict[str, Any]:
        final = self.final_gap
        return {
            "position": self.position,
            "layers": self.layers,
            "metric": "logit(<tool_call>) - logit(correct tag)",
            "per_action": self.per_action(),
            "final_gap_per_action": {
                a: float(final[[i for i, x in enumerate(self.labels) if x == a]].mean())
                for a in sorted(set(self.labels))
            },
            "n_per_action": {a: self.labels.count(a) for a in sorted(set(self.labels))},
            "final_max_abs_diff": self.final_max_abs_diff,
        }


def _gap(tag_logits: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    index = torch.as_tensor([ACTIONS.index(Action(a)) for a in labels])
    tool = tag_logits[..., ACTIONS.index(Action.CALL_TOOL)]
    correct = tag_logits[:, torch.arange(len(index)), index]
    return tool - correct


def logit_lens(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    position: str = "decision",
    *,
    outputs: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> LensResult:
    """The logit lens of every block (or `layers`) at `position` for each case (texts as `probes.capture.case_texts`
    builds them: the gold turn cut after `</think>`, then the decision tokens' suffix, for "decision"). Batches are
    left padded as in capture."""
    texts = case_texts(tokenizer, cases, position, outputs)
    labels = [c.expected_action.value for c in cases]
    tag_ids = action_tag_token_ids(tokenizer)
    ids = [tag_ids[a] for a in ACTIONS]
    n_blocks = len(decoder_layers(model))
    chosen = list(range(n_blocks)) if layers is None else sorted(set(layers))
    watch = sorted(set(chosen) | {n_blocks - 1})
    think_ids = think_token_ids(tokenizer) if position in THINK_RULES else None
    decision_ids = decision_tokens(tokenizer).shared if position == "decision" else None
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (-len(encoded[i]), i))
    device = model_device(model)
    tag_logits = torch.zeros(len(chosen), len(texts), len(ACTIONS))
    final = torch.zeros(len(texts), len(ACTIONS))
    worst = 0.0
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), block_outputs(model, watch) as store:
            for start in tqdm(range(0, len(texts), batch_size), desc="logit lens", disable=not progress):
                rows = order[start : start + batch_size]
                input_ids, mask, pos_ids = pad_left([encoded[i] for i in rows], pad_token_id(tokenizer))
                where = compute_positions(
                    position, input_ids, mask, think_ids=think_ids, decision_ids=decision_ids
                ).index
                assert where is not None, "the logit lens reads one position per row"
                keep = torch.unique(where)
                logits = forward_logits(
                    model, input_ids.to(device), mask.to(device), pos_ids.to(device), keep.to(device)
                )
                column = torch.searchsorted(keep, where)
                real = logits[torch.arange(len(rows)), column.to(logits.device)].float()  # [B, V]
                b = torch.arange(len(rows), device=device)
                at = where.to(device)
                for li, layer in enumerate(chosen):
                    tag_logits[li, rows] = unembed(model, store[layer][b, at], ids).cpu()
                lens_last = unembed(model, store[n_blocks - 1][b, at])
                worst = max(worst, float((lens_last - real).abs().max()))
                final[rows] = real[:, ids].cpu()
                store.clear()
    finally:
        for module, mode in modes:
            module.train(mode)
    return LensResult(chosen, [c.id for c in cases], labels, position, tag_logits, final, worst)
