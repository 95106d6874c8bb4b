"""Reference tests against the peers (issue 19): steering-vectors 0.12.2 and repeng 0.4.0, on a real tiny Qwen3.

Conventions, from their source:

- steering-vectors: `SteeringVector({i: v}).apply(model, multiplier=a, min_token_index=k)` hooks the module its
  layer matcher guesses for "decoder_block" (`model.layers.{num}` here, layer_matching.py) and adds `a * v`
  (steering_vector.py:99, `target_activation = multiplier * self.layer_activations[layer_num]`) to its OUTPUT, in
  place, at the columns `slice(k, None)` of the tensor the hook sees (steering_vector.py:84, :204-212): a column of
  the current forward pass, not a token of the row.
- repeng: `ControlModel(model, [i])` replaces `model.model.layers[i]` by a `ControlModule` (control.py:30-35) whose
  forward adds `coeff * directions[i]` (control.py:77-78) to the wrapped block's OUTPUT (control.py:149-186), at
  every column from the last `position_ids == 0` on (control.py:172-181): the padding of a left-padded row is
  skipped, every real position is steered, there is no choice of positions.
- ours: `steer(model, SteeringVector({i: v}), alpha)` adds `alpha * v` to the output of decoder block i
  (`blocks.{i}.hook_resid_post`, HF `hidden_states[i + 1]`).

So the same layer index, the same scale (alpha = multiplier = coeff) and the same place. On unpadded input all
three give the same hidden states and logits. Where they part (each asserted below): steering-vectors' positions
are columns of the padded batch and of each forward pass (left padding moves a row's tokens; under a KV cache every
decode step is column 0, so `min_token_index > 0` never reaches a generated token: steering-vectors issue #60);
repeng reads `position_ids` for its padding mask, which on transformers 5 fails on a batch the caller gave no
position ids, and its wrapper sits outside the block transformers records `output_hidden_states` from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import steering_vectors
import torch

from tests.conftest import make_tiny_qwen3, recorded
from toolprior.experiments.bench_peers import import_repeng, repeng_control
from toolprior.modeling import decoder_layers
from toolprior.probes.batching import pad_left
from toolprior.steering.apply import steer
from toolprior.steering.vector import SteeringVector

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

D = 64
# Mixed lengths, each with a </think> (the decision point of the tiny tokenizer) at a different offset.
TEXTS = (
    "shipment invoice verify status pending</think>refund customer approve",
    "ticket</think>account escalate",
    "clarify refund</think>shipment status pending invoice",
)


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return make_tiny_qwen3(tiny_tokenizer, seed=2, layers=3, hidden=D)


def random_vector(layers: tuple[int, ...], seed: int = 0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({layer: torch.randn(D, generator=g) for layer in layers})


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decision_column(tokenizer, ids: list[int]) -> int:
    return ids.index(tokenizer.convert_tokens_to_ids("</think>"))


def hook_counts(model) -> list[int]:
    """Hooks on every module (transformers 5.25 leaves its own output recorders on the blocks after first use)."""
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


def run(model, context: Callable[[], contextlib.AbstractContextManager], **inputs) -> list[torch.Tensor]:
    """Every block's output and the logits of one forward pass (no cache) inside `context()`; the blocks are
    recorded by hooks registered after the steering's, so they see what the next block receives."""
    with context(), torch.no_grad(), contextlib.ExitStack() as stack:
        seen = [stack.enter_context(recorded(block)) for block in decoder_layers(model)]
        logits = model(**inputs, use_cache=False).logits
    return [s[0] for s in seen] + [logits]


def ours(model, vector, alpha, **kwargs):
    return lambda: steer(model, vector, alpha, **kwargs)


def theirs(vector, model, alpha, **kwargs):
    sv = steering_vectors.SteeringVector({i: vector[i] for i in vector.layers})
    return lambda: sv.apply(model, multiplier=alpha, **kwargs)


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-5) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)


def biggest_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------------------ unpadded: the same


@pytest.mark.parametrize(("layers", "alpha"), [((1,), 4.0), ((0, 2), -2.5)])
def test_ours_steering_vectors_and_repeng_give_the_same_states_and_logits_unpadded(
    model, tiny_tokenizer, layers, alpha
):
    hooks = hook_counts(model)
    vector = random_vector(layers, seed=1)
    row = ids_of(tiny_tokenizer, TEXTS[0])
    width = min(len(ids_of(tiny_tokenizer, t)) for t in TEXTS)
    for ids in (torch.tensor([row]), torch.tensor([ids_of(tiny_tokenizer, t)[:width] for t in TEXTS])):
        inputs = {"input_ids": ids, "position_ids": torch.arange(ids.shape[1]).expand_as(ids)}
        plain = run(model, contextlib.nullcontext, **inputs)
        mine = run(model, ours(model, vector, alpha), **inputs)
        sv = run(model, theirs(vector, model, alpha), **inputs)
        rp = run(model, lambda: repeng_control(model, vector, alpha), **inputs)
        assert_same(mine, sv)
        assert_same(mine, rp)
        # the same place: blocks before the first steered one untouched, that block's output moved by alpha * v
        first = layers[0]
        for i in range(first):
            assert torch.equal(mine[i], plain[i])
        shift = alpha * vector[first]
        torch.testing.assert_close(mine[first] - plain[first], shift.expand_as(plain[first]), atol=1e-4, rtol=0)
        assert biggest_difference(mine[-1:], plain[-1:]) > 0.1  # the logits moved
    assert hook_counts(model) == hooks, "a hook was left behind"
    assert all(type(b).__name__ == "Qwen3DecoderLayer" for b in decoder_layers(model)), "repeng left a wrapper"


def test_steering_vectors_min_token_index_is_our_generated_and_from_decision_columns_unpadded(model, tiny_tokenizer):
    """One unpadded row run whole (no cache): min_token_index=P (the prompt's length) steers what ours calls the
    generated positions, min_token_index=c (the </think> column) what ours calls from_decision."""
    vector = random_vector((1,), seed=2)
    prompt = ids_of(tiny_tokenizer, "shipment invoice verify status")
    row = prompt + ids_of(tiny_tokenizer, TEXTS[1])
    ids = torch.tensor([row])
    plain = run(model, contextlib.nullcontext, input_ids=ids)
    mask = torch.ones(1, len(prompt), dtype=torch.long)
    generated = run(model, ours(model, vector, 3.0, positions="generated", attention_mask=mask), input_ids=ids)
    assert_same(generated, run(model, theirs(vector, model, 3.0, min_token_index=len(prompt)), input_ids=ids))
    decision = decision_column(tiny_tokenizer, row)
    assert decision > len(prompt)
    from_decision = run(
        model, ours(model, vector, 3.0, positions="from_decision", tokenizer=tiny_tokenizer), input_ids=ids
    )
    assert_same(from_decision, run(model, theirs(vector, model, 3.0, min_token_index=decision), input_ids=ids))
    # and each steered something, and not the same thing
    assert torch.equal(generated[1][:, : len(prompt)], plain[1][:, : len(prompt)])
    assert biggest_difference(generated, plain) > 0.1 and biggest_difference(generated, from_decision) > 0.1


# ------------------------------------------------------------------------------------------ left padding


def test_on_a_left_padded_batch_a_min_token_index_is_a_column_not_a_token_of_each_row(model, tiny_tokenizer):
    """Steering from each row's </think> on. One by one (each row alone, unpadded) steering-vectors and ours agree;
    in one left-padded batch ours still gives each row its one-by-one states, steering-vectors' min_token_index (the
    padded column of row 0's </think>) steers other tokens of the other rows."""
    vector = random_vector((1,), seed=3)
    rows = [ids_of(tiny_tokenizer, t) for t in TEXTS]
    alone = []
    for row in rows:
        ids = torch.tensor([row])
        mine = run(model, ours(model, vector, 3.0, positions="from_decision", tokenizer=tiny_tokenizer), input_ids=ids)
        sv = run(model, theirs(vector, model, 3.0, min_token_index=decision_column(tiny_tokenizer, row)), input_ids=ids)
        assert_same(mine, sv)
        alone.append([o[0] for o in mine])
    ids, mask, positions = pad_left(rows, tiny_tokenizer.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    width = ids.shape[1]

    def row_of(outputs: list[torch.Tensor], b: int) -> list[torch.Tensor]:
        return [o[b, width - len(rows[b]) :] for o in outputs]  # the row's real columns

    mine = run(model, ours(model, vector, 3.0, positions="from_decision", tokenizer=tiny_tokenizer), **batch)
    column = width - len(rows[0]) + decision_column(tiny_tokenizer, rows[0])
    sv = run(model, theirs(vector, model, 3.0, min_token_index=column), **batch)
    for b in range(len(rows)):
        assert_same(row_of(mine, b), alone[b], atol=1e-4)
    assert_same(row_of(sv, 0), alone[0], atol=1e-4)
    for b in (1, 2):  # their </think> sits at another column of the padded batch
        assert biggest_difference(row_of(sv, b), alone[b]) > 0.1


def test_repeng_matches_on_a_left_padded_batch_with_position_ids_and_fails_without(model, tiny_tokenizer):
    """Every real position steered (repeng's only rule). With the position ids `generate` and `capture` pass, repeng
    skips the padding and each row gets its one-by-one states, as ours does. Without them (`model(**tokenizer(texts,
    padding=True))`) transformers 5 gives each block [1, T] position ids and repeng's mask cannot be shaped to the
    batch: RuntimeError; ours needs nothing but the attention mask."""
    vector = random_vector((1,), seed=4)
    rows = [ids_of(tiny_tokenizer, t) for t in TEXTS]
    alone = [[o[0] for o in run(model, theirs(vector, model, 2.0), input_ids=torch.tensor([row]))] for row in rows]
    ids, mask, positions = pad_left(rows, tiny_tokenizer.pad_token_id)
    width = ids.shape[1]
    with_positions = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    mine = run(model, ours(model, vector, 2.0), **with_positions)
    rp = run(model, lambda: repeng_control(model, vector, 2.0), **with_positions)
    for b, row in enumerate(rows):
        real = slice(width - len(row), None)
        assert_same([o[b, real] for o in mine], alone[b], atol=1e-4)
        assert_same([o[b, real] for o in rp], alone[b], atol=1e-4)
    mine_mask_only = run(model, ours(model, vector, 2.0), input_ids=ids, attention_mask=mask)
    for b, row in enumerate(rows):  # RoPE sees shifted positions: only rounding changes
        assert_same([o[b, width - len(row) :] for o in mine_mask_only], alone[b], atol=1e-4)
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        run(model, lambda: repeng_control(model, vector, 2.0), input_ids=ids, attention_mask=mask)
    assert all(type(b).__name__ == "Qwen3DecoderLayer" for b in decoder_layers(model)), "repeng left a wrapper"


def test_output_hidden_states_shows_a_hooked_blocks_edit_only_when_made_in_place(model, tiny_tokenizer):
    """transformers 5.25 fills `output_hidden_states` from forward hooks it registers on each decoder block on first
    use; a hook registered before a steering edit sees the block's own output. Ours (a hook that returns a new
    tensor) and repeng (a wrapper around the block) therefore show block i's UNSTEERED output at hidden_states[i + 1];
    steering-vectors, which edits the tensor in place, shows the steered one. The next block receives the steered
    output in all three (the logits agree): read steered states with a hook, as `probes.capture` does."""
    vector = random_vector((1,), seed=5)
    ids = torch.tensor([ids_of(tiny_tokenizer, TEXTS[0])])
    states: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        plain = model(input_ids=ids, output_hidden_states=True)  # transformers' recorders go on here, first
        for name, context in (
            ("ours", ours(model, vector, 3.0)),
            ("steering_vectors", theirs(vector, model, 3.0)),
            ("repeng", lambda: repeng_control(model, vector, 3.0)),
        ):
            with context(), recorded(decoder_layers(model)[1]) as seen:
                out = model(input_ids=ids, output_hidden_states=True)
            states[name] = out.hidden_states[2]
            torch.testing.assert_close(seen[0], plain.hidden_states[2] + 3.0 * vector[1], atol=1e-4, rtol=0)
            assert float((out.logits - plain.logits).abs().max()) > 0.1
            states[f"{name}_logits"] = out.logits
    torch.testing.assert_close(states["ours"], plain.hidden_states[2], atol=1e-6, rtol=0)
    torch.testing.assert_close(states["repeng"], plain.hidden_states[2], atol=1e-6, rtol=0)
    torch.testing.assert_close(states["steering_vectors"], plain.hidden_states[2] + 3.0 * vector[1], atol=1e-4, rtol=0)
    for name in ("steering_vectors", "repeng"):
        torch.testing.assert_close(states[f"{name}_logits"], states["ours_logits"], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ generation, KV cache


def greedy_alone(model, row: list[int], steps: int, context: Callable[[], contextlib.AbstractContextManager]):
    """The one-by-one result: one unpadded row, no KV cache, every step the whole sequence run again inside
    `context()`; eos is never chosen (as `min_new_tokens` does). Returns (tokens, [steps, vocab] logits)."""
    ids = list(row)
    logits = []
    eos = model.generation_config.eos_token_id
    for _ in range(steps):
        with context(), torch.no_grad():
            last = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        logits.append(last)
        chosen = last.clone()
        chosen[eos] = float("-inf")
        ids.append(int(chosen.argmax()))
    return ids[len(row) :], torch.stack(logits)


def cached_generate(model, batch: dict[str, torch.Tensor], steps: int, context) -> tuple[torch.Tensor, torch.Tensor]:
    """A left-padded batch through `generate` (greedy, KV cache) inside `context()`: ([B, steps] tokens,
    [B, steps, vocab] logits)."""
    with context(), torch.no_grad():
        out = model.generate(
            **batch, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
            output_logits=True, return_dict_in_generate=True,
        )  # fmt: skip
    return out.sequences[:, batch["input_ids"].shape[1] :], torch.stack(out.logits, dim=1)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@pytest.mark.parametrize("rule", ["generated", "all"])
def test_batched_generation_under_a_kv_cache_against_one_by_one(model, tiny_tokenizer, rule):
    """rule "generated": steer the generated tokens only (steering-vectors: min_token_index = the prompt's length;
    ours: positions="generated"). The one-by-one result is steering-vectors itself without a cache, one row at a
    time. Ours, batched, left padded, with the cache, gives it; steering-vectors under the cache steers nothing (each
    decode step's single column is column 0 < min_token_index, issue #60): its logits are the unsteered ones.
    rule "all": every position; then all three, cached and batched, give the one-by-one result."""
    steps = 5
    hooks = hook_counts(model)
    vector = random_vector((1,), seed=6)
    alpha = 4.0
    rows = [ids_of(tiny_tokenizer, t) for t in TEXTS]
    ids, mask, _ = pad_left(rows, tiny_tokenizer.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    width = ids.shape[1]
    reference = [
        greedy_alone(
            model, row, steps, theirs(vector, model, alpha, min_token_index=len(row) if rule == "generated" else 0)
        )
        for row in rows
    ]
    plain_tokens, plain_logits = cached_generate(model, batch, steps, _nothing)

    def assert_one_by_one(tokens: torch.Tensor, logits: torch.Tensor) -> None:
        for b, (ref_tokens, ref_logits) in enumerate(reference):
            assert tokens[b].tolist() == ref_tokens
            torch.testing.assert_close(logits[b], ref_logits, atol=1e-4, rtol=0)

    positions = "generated" if rule == "generated" else "all"
    assert_one_by_one(*cached_generate(model, batch, steps, ours(model, vector, alpha, positions=positions)))
    sv_tokens, sv_logits = cached_generate(
        model, batch, steps, theirs(vector, model, alpha, min_token_index=width if rule == "generated" else 0)
    )
    if rule == "generated":
        assert torch.equal(sv_tokens, plain_tokens)
        torch.testing.assert_close(sv_logits, plain_logits, atol=1e-6, rtol=0)
        for b, (_, ref_logits) in enumerate(reference):
            # the first token is predicted at the last prompt position (steered by neither); the next ones differ
            torch.testing.assert_close(sv_logits[b, 0], ref_logits[0], atol=1e-4, rtol=0)
            assert float((sv_logits[b, 1] - ref_logits[1]).abs().max()) > 0.1
    else:
        assert_one_by_one(sv_tokens, sv_logits)
        assert_one_by_one(*cached_generate(model, batch, steps, lambda: repeng_control(model, vector, alpha)))
        assert float((plain_logits - torch.stack([r[1] for r in reference])).abs().max()) > 0.1
    assert hook_counts(model) == hooks, "a hook was left behind"


def test_import_repeng_leaves_numpy_as_it_was():
    import numpy as np

    repeng = import_repeng()
    assert hasattr(repeng, "ControlModel") and hasattr(repeng, "ControlVector")
    assert np.__version__.startswith("1.") or not hasattr(np, "float_")
