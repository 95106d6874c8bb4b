"""Activation capture: one batched forward pass per batch reads every requested hook point at the chosen positions.

    acts = capture(model, tokenizer, texts, all_resid_post(model), "prompt_end")
    acts["blocks.3.hook_resid_post"]        # [N, d_model]
    acts = capture_cases(model, tokenizer, cases, ["blocks.1.attn.hook_z"], "decision")   # [N, n_heads, head_dim]

How (the default backend, `backend="hooks"`): plain PyTorch forward hooks on the modules `probes.hook_points.resolve`
names, registered inside a context manager (`recording`) and removed on exit, even on error. Each hook keeps only
the selected position(s) of each row as soon as its module has run, so no [B, T, d] tensor outlives its module and
nothing is held for all layers but the [B, d] rows of the current batch. Once the last needed block has run, a
private exception stops the forward pass (the later blocks and the LM head are skipped).

Batches are LEFT padded by this module whatever the tokenizer's padding_side, with position ids counted from each
row's first real token, so a row gives the same numbers alone as in a mixed-length batch. Texts are sorted by
length before batching (less padding); results come back in the caller's order. Texts are tokenized with
`add_special_tokens=False`: they are expected to carry the chat template's own special tokens.

Other backends read the same modules through other libraries, for cross-checks: `backend="nnsight"`
(`probes.backends.nnsight_backend`) and `backend="transformer_lens"` (`probes.backends.transformer_lens_backend`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from probes.hook_points import HookPoint, Read, parse_hook_name, resolve
from probes.positions import THINK_RULES, MissingThinkError, Positions, compute_positions, think_token_ids
from toolprior.decision_point import decision_tokens
from toolprior.modeling import Fingerprint, decoder_layers, model_fingerprint

if TYPE_CHECKING:
    from probes.store import ActivationStore
    from toolprior.cases import Case

BACKENDS: tuple[str, ...] = ("hooks", "nnsight", "transformer_lens")


@dataclass
class Activations:
    """Captured activations: `tensors[hook_name]` is [N, d] ([N, n_heads, head_dim] for hook_z), row i belonging to
    `case_ids[i]` with label `labels[i]`, all read at `position` on the model `fingerprint` names.

    `tensors` may be lazy (a store read one hook at a time, see `probes.store.load_activations`)."""

    tensors: Mapping[str, torch.Tensor]
    case_ids: list[str]
    labels: list[str]
    position: str
    fingerprint: Fingerprint
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.case_ids) != len(self.labels):
            raise ValueError(f"{len(self.case_ids)} case ids but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, hook: str) -> torch.Tensor:
        try:
            return self.tensors[hook]
        except KeyError:
            raise KeyError(f"no activations for {hook!r}; captured: {', '.join(self.hook_names)}") from None

    @property
    def hook_names(self) -> list[str]:
        return list(self.tensors)

    def layer(self, i: int) -> torch.Tensor:
        """The residual stream after block i: `self["blocks.{i}.hook_resid_post"]`."""
        return self[f"blocks.{i}.hook_resid_post"]

    def subset(self, rows: Sequence[int] | torch.Tensor) -> Activations:
        """The same activations for some rows only (in the given order)."""
        index = torch.as_tensor(rows, dtype=torch.long)
        picked = index.tolist()
        return dataclasses.replace(
            self,
            tensors={name: self[name][index] for name in self.hook_names},
            case_ids=[self.case_ids[i] for i in picked],
            labels=[self.labels[i] for i in picked],
        )


# ------------------------------------------------------------------------------------------------------- batching


@dataclass(frozen=True)
class Batch:
    """One left-padded batch as every backend runs it. `rows` are the caller's indices of its rows."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    positions: Positions
    rows: tuple[int, ...]


# A backend, once opened on a model and a list of hook points: batch -> {hook name: [B, ...] at the positions}.
Runner = Callable[[Batch], dict[str, torch.Tensor]]


def model_device(model: nn.Module) -> torch.device:
    return next(p.device for p in model.parameters() if p.device.type != "meta")


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) of token lists, left padded; positions count from each row's first
    real token (pad positions get 0), as `generate` does, so padding does not shift RoPE."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("cannot capture an empty text")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.as_tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad token nor an eos token to pad with")
    return int(pad)


# ------------------------------------------------------------------------------------------------ the hooks backend


class _StopForward(Exception):
    """Raised by the hook after the last needed block: everything wanted has been read."""


@dataclass
class _State:
    positions: Positions | None = None
    out: dict[str, torch.Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def recording(model: nn.Module, hook_points: Sequence[str | HookPoint], stop_early: bool = True) -> Iterator[Runner]:
    """Forward hooks on every module the hook points name, for as long as the block lasts; yields a runner that
    takes a `Batch` and returns {hook name: value at the batch's positions}. The hooks come out on exit, whatever
    happens inside.

        with recording(model, ["blocks.0.hook_resid_post"]) as run:
            values = run(batch)

    `stop_early`: end the forward pass after the last needed block (skips later blocks and the LM head)."""
    points = sorted({parse_hook_name(p) for p in hook_points}, key=lambda p: p.fire_order)
    if not points:
        raise ValueError("no hook points to record")
    state = _State()
    handles: list[Any] = []

    def make_hook(name: str, read: Read) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if state.positions is None:  # a forward pass the caller runs inside the block, not `run`'s
                return
            state.out[name] = state.positions.select(read.extract(args, kwargs, output)).detach()

        return hook

    try:
        for point in points:
            module, read = resolve(model, point)
            handles.append(module.register_forward_hook(make_hook(point.name, read), with_kwargs=True))
        if stop_early:

            def stop(module: nn.Module, args: Any, output: Any) -> None:
                if state.positions is not None:
                    raise _StopForward

            last = decoder_layers(model)[max(p.layer for p in points)]
            handles.append(last.register_forward_hook(stop))  # registered last: fires after the capture hooks

        def run(batch: Batch) -> dict[str, torch.Tensor]:
            device = model_device(model)
            state.positions = batch.positions.to(device)
            state.out = {}
            try:
                with torch.no_grad():
                    model(
                        input_ids=batch.input_ids.to(device),
                        attention_mask=batch.attention_mask.to(device),
                        position_ids=batch.position_ids.to(device),
                        use_cache=False,
                    )
            except _StopForward:
                pass
            finally:
                state.positions = None
            missing = [p.name for p in points if p.name not in state.out]
            if missing:
                raise RuntimeError(f"hooks did not fire for {', '.join(missing)} (the forward pass skipped them)")
            return state.out

        yield run
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def open_backend(
    backend: str, model: nn.Module, tokenizer: Any, hook_points: Sequence[str | HookPoint]
) -> Iterator[Runner]:
    """A runner of `backend` ("hooks", "nnsight" or "transformer_lens") over `model`, open for the block."""
    if backend == "hooks":
        with recording(model, hook_points) as run:
            yield run
    elif backend == "nnsight":
        from probes.backends.nnsight_backend import nnsight_runner

        with nnsight_runner(model, tokenizer, hook_points) as run:
            yield run
    elif backend == "transformer_lens":
        from probes.backends.transformer_lens_backend import transformer_lens_runner

        with transformer_lens_runner(model, tokenizer, hook_points) as run:
            yield run
    else:
        raise ValueError(f"unknown capture backend {backend!r}; expected one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------------------- capture


def capture(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    hook_points: Sequence[str | HookPoint],
    position: str,
    batch_size: int = 16,
    store: ActivationStore | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    *,
    case_ids: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    backend: str = "hooks",
) -> Activations:
    """Read `hook_points` (names like "blocks.3.hook_resid_post", see `probes.hook_points`) at `position` (a rule
    of `probes.positions`) for every text; one forward pass per batch reads them all.

    Without `store` the result is held in memory as `dtype` (rows in the order of `texts`). With a
    `probes.store.ActivationStore`, each batch streams to disk as it is read and the returned `Activations` reads
    hook points back from disk lazily, one at a time, so 10,000 cases never need 10,000 cases of memory.

    `case_ids` default to "0", "1", ...; `labels` to "". MissingThinkError (naming the case ids) when `position`
    is decision/think_mean and a text has no `</think>`, or (decision) its last `</think>` is not followed by the
    decision tokens: a text cut at `</think>` must end with `DecisionTokens.suffix` (`case_texts` adds it)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown capture backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    texts = list(texts)
    n = len(texts)
    ids_of_cases = [str(i) for i in range(n)] if case_ids is None else [str(c) for c in case_ids]
    label_list = [""] * n if labels is None else [str(label) for label in labels]
    if len(ids_of_cases) != n or len(label_list) != n:
        raise ValueError(f"{n} texts but {len(ids_of_cases)} case ids and {len(label_list)} labels")
    points = sorted({parse_hook_name(p) for p in hook_points}, key=lambda p: p.fire_order)
    if not points:
        raise ValueError("no hook points requested")
    for point in points:
        resolve(model, point)  # fail on a bad name before any forward pass
    names = [p.name for p in points]

    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    think_ids = think_token_ids(tokenizer) if position in THINK_RULES else None
    decision_ids = decision_tokens(tokenizer).shared if position == "decision" else None
    pad_id = _pad_id(tokenizer)
    order = sorted(range(n), key=lambda i: (-len(encoded[i]), i))
    fingerprint = model_fingerprint(model)
    meta = {"backend": backend, "batch_size": batch_size}

    from tqdm.auto import tqdm

    parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    row_parts: list[torch.Tensor] = []
    if store is not None:
        store.begin(
            hooks=names,
            position=position,
            case_ids=ids_of_cases,
            labels=label_list,
            fingerprint=fingerprint,
            dtype=dtype,
            meta=meta,
        )
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # no dropout in what is read; each module's own mode is put back below
    try:
        with open_backend(backend, model, tokenizer, points) as run:
            starts = range(0, n, batch_size)
            for start in tqdm(starts, desc="capture", disable=not progress, total=len(starts)):
                rows = tuple(order[start : start + batch_size])
                input_ids, attention_mask, position_ids = pad_left([encoded[i] for i in rows], pad_id)
                try:
                    positions = compute_positions(
                        position, input_ids, attention_mask, think_ids=think_ids, decision_ids=decision_ids
                    )
                except MissingThinkError as e:
                    bad = [rows[r] for r in e.rows]
                    need = "a </think>" if position != "decision" else "the decision tokens at its last </think>"
                    raise MissingThinkError(
                        f"position rule {position!r} needs {need} in every text; missing in cases "
                        f"{[ids_of_cases[i] for i in bad]}",
                        bad,
                    ) from None
                values = run(Batch(input_ids, attention_mask, position_ids, positions, rows))
                values = {name: values[name].to(device="cpu", dtype=dtype) for name in names}
                row_index = torch.as_tensor(rows, dtype=torch.long)
                if store is not None:
                    store.append(values, row_index)
                else:
                    for name in names:
                        parts[name].append(values[name])
                    row_parts.append(row_index)
    except BaseException:
        if store is not None:
            store.abort()
        raise
    finally:
        for module, training in modes:
            module.training = training

    if store is not None:
        from probes.store import load_activations

        return load_activations(store.finish(), lazy=True)
    tensors: dict[str, torch.Tensor] = {}
    if n:
        index = torch.cat(row_parts)
        for name in names:
            stacked = torch.cat(parts.pop(name))
            out = torch.empty_like(stacked)
            out[index] = stacked
            tensors[name] = out
    return Activations(tensors, ids_of_cases, label_list, position, fingerprint, meta)


def _turn_up_to_think_close(turn: str, case_id: str, suffix: str = "") -> str:
    """The turn cut right after its last `</think>`, then `suffix` (the decision tokens' text beyond it)."""
    from toolprior.output_format import THINK_CLOSE

    at = turn.rfind(THINK_CLOSE)
    if at < 0:
        raise MissingThinkError(f"case {case_id!r}: the assistant turn has no {THINK_CLOSE}", [])
    return turn[: at + len(THINK_CLOSE)] + suffix


def case_texts(tokenizer: Any, cases: Sequence[Case], position: str, outputs: Sequence[str] | None = None) -> list[str]:
    """The texts `capture_cases` feeds the model for `position`:

    - prompt_end: the prompt (`render_prompt`, ending with the generation prompt);
    - think_mean: the prompt + the assistant turn cut right after its last `</think>`;
    - decision: the same, then the tokens every action tag shares after `</think>` (`DecisionTokens.suffix` of
      `toolprior.decision_point`: nothing on the organism, `<` where the tags are split), so the text ends at the
      decision position and the token that names the action is NOT in the input;
    - last: the prompt + the whole assistant turn.

    The turn is the gold turn (`render_turn(case.gold)`) or, when `outputs` is given, `outputs[i]`: what a model
    generated for case i (text after the prompt)."""
    from toolprior.chat_template import render_prompt
    from toolprior.output_format import render_turn

    if outputs is not None and len(outputs) != len(cases):
        raise ValueError(f"{len(cases)} cases but {len(outputs)} outputs")
    suffix = decision_tokens(tokenizer).suffix if position == "decision" else ""
    texts: list[str] = []
    missing: list[int] = []
    for i, case in enumerate(cases):
        prompt = render_prompt(tokenizer, case)
        if position == "prompt_end":
            texts.append(prompt)
            continue
        if outputs is not None:
            turn = outputs[i]
        elif case.gold is not None:
            turn = render_turn(case.gold)
        else:
            raise ValueError(f"case {case.id!r} has no gold turn; pass outputs= or use position='prompt_end'")
        if position in THINK_RULES:
            try:
                turn = _turn_up_to_think_close(turn, case.id, suffix)
            except MissingThinkError:
                missing.append(i)
                continue
        texts.append(prompt + turn)
    if missing:
        raise MissingThinkError(
            f"position rule {position!r}: no </think> in the turn of cases {[cases[i].id for i in missing]}", missing
        )
    return texts


def capture_cases(
    model: nn.Module,
    tokenizer: Any,
    cases: Sequence[Case],
    hook_points: Sequence[str | HookPoint],
    position: str,
    *,
    outputs: Sequence[str] | None = None,
    label: Callable[[Case], str] | None = None,
    **kwargs: Any,
) -> Activations:
    """`capture` on the texts of `cases` (see `case_texts`), with case ids and labels filled in.

    Labels default to each case's expected action ("call_tool", "clarify", ...); pass `label` to change them.
    Other keyword arguments go to `capture` (batch_size, store, dtype, progress, backend)."""
    from toolprior.actions import Action

    texts = case_texts(tokenizer, cases, position, outputs)

    def default_label(case: Case) -> str:
        action = case.expected_action
        return action.value if isinstance(action, Action) else str(action)

    labeller = label or default_label
    return capture(
        model,
        tokenizer,
        texts,
        hook_points,
        position,
        case_ids=[c.id for c in cases],
        labels=[labeller(c) for c in cases],
        **kwargs,
    )
