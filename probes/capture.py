"""Activation capture: one batched forward pass per batch reads every requested hook point at the chosen positions.

    acts = capture(model, tokenizer, texts, all_resid_post(model), "prompt_end")
    acts["blocks.3.hook_resid_post"]        # [N, d_model]
    acts = capture_cases(model, tokenizer, cases, ["blocks.1.attn.hook_z"], "decision")   # [N, n_heads, head_dim]

How: a backend (`open_backend`) runs each batch and reads the hook points at the batch's positions. The default,
`backend="hooks"`, is plain PyTorch forward hooks (`probes.backends.hooks_backend.recording`); the others read the
same modules through other libraries, for cross-checks: `backend="nnsight"` (`probes.backends.nnsight_backend`)
and `backend="transformer_lens"` (`probes.backends.transformer_lens_backend`).

Batches are LEFT padded (`probes.batching`) whatever the tokenizer's padding_side, with position ids counted from
each row's first real token, so a row gives the same numbers alone as in a mixed-length batch. Texts are sorted by
length before batching (less padding); results come back in the caller's order. Texts are tokenized with
`add_special_tokens=False`: they are expected to carry the chat template's own special tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from toolprior.actions import Action
from toolprior.chat_template import render_prompt
from toolprior.decision_point import decision_tokens
from toolprior.fingerprint import model_fingerprint
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.output_format import THINK_CLOSE, render_turn
from toolprior.probes.activations import Activations
from toolprior.probes.backends.hooks_backend import recording
from toolprior.probes.backends.nnsight_backend import nnsight_runner
from toolprior.probes.backends.transformer_lens_backend import transformer_lens_runner
from toolprior.probes.batching import Batch, Runner, pad_left, pad_token_id
from toolprior.probes.hook_points import HookPoint, parse_hook_name, resolve
from toolprior.probes.positions import THINK_RULES, MissingThinkError, compute_positions, think_token_ids
from toolprior.probes.store import ActivationStore, load_activations

if TYPE_CHECKING:
    from toolprior.cases import Case

BACKENDS: tuple[str, ...] = ("hooks", "nnsight", "transformer_lens")


@contextlib.contextmanager
def open_backend(
    backend: str, model: CausalLM, tokenizer: Any, hook_points: Sequence[str | HookPoint]
) -> Iterator[Runner]:
    """A runner of `backend` ("hooks", "nnsight" or "transformer_lens") over `model`, open for the block."""
    if backend == "hooks":
        with recording(model, hook_points) as run:
            yield run
    elif backend == "nnsight":
        with nnsight_runner(model, tokenizer, hook_points) as run:
            yield run
    elif backend == "transformer_lens":
        with transformer_lens_runner(model, tokenizer, hook_points) as run:
            yield run
    else:
        raise ValueError(f"unknown capture backend {backend!r}; expected one of {', '.join(BACKENDS)}")


# ---------------------------------------------------------------------------------------------------------- capture


def capture(
    model: CausalLM,
    tokenizer: Tokenizer,
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
    pad_id = pad_token_id(tokenizer)
    order = sorted(range(n), key=lambda i: (-len(encoded[i]), i))
    fingerprint = model_fingerprint(model)
    meta = {"backend": backend, "batch_size": batch_size}

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
    at = turn.rfind(THINK_CLOSE)
    if at < 0:
        raise MissingThinkError(f"case {case_id!r}: the assistant turn has no {THINK_CLOSE}", [])
    return turn[: at + len(THINK_CLOSE)] + suffix


def case_texts(
    tokenizer: Tokenizer, cases: Sequence[Case], position: str, outputs: Sequence[str] | None = None
) -> list[str]:
    """The texts `capture_cases` feeds the model for `position`:

    - prompt_end: the prompt (`render_prompt`, ending with the generation prompt);
    - think_mean: the prompt + the assistant turn cut right after its last `</think>`;
    - decision: the same, then the tokens every action tag shares after `</think>` (`DecisionTokens.suffix` of
      `toolprior.decision_point`: nothing on the organism, `<` where the tags are split), so the text ends at the
      decision position and the token that names the action is NOT in the input;
    - last: the prompt + the whole assistant turn.

    The turn is the gold turn (`render_turn(case.gold)`) or, when `outputs` is given, `outputs[i]`: what a model
    generated for case i (text after the prompt)."""
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
    model: CausalLM,
    tokenizer: Tokenizer,
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
