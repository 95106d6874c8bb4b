"""Steering vectors: arithmetic, save/load with the model checks, and the aggregators that compute them."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_tiny_qwen3
from toolprior.errors import InputError
from toolprior.steering.compute import (
    class_groups,
    compute_from_cases,
    compute_vector,
    mean_diff,
    pca_paired,
    probe_weights,
    twin_pairs,
)
from toolprior.steering.consistency import cosine_consistency
from toolprior.steering.vector import SteeringVector, sidecar_path, vector_meta


def vec(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------- arithmetic


def test_arithmetic_is_layer_wise_over_the_union_of_layers():
    a = SteeringVector({1: vec([1, 0]), 2: vec([0, 2])})
    b = SteeringVector({2: vec([1, 1]), 3: vec([3, 0])})
    total = a + b
    assert total.layers == [1, 2, 3]
    assert (
        torch.equal(total[1], vec([1, 0])) and torch.equal(total[2], vec([1, 3])) and torch.equal(total[3], vec([3, 0]))
    )
    diff = a - b
    assert torch.equal(diff[2], vec([-1, 1])) and torch.equal(diff[3], vec([-3, 0]))
    assert torch.equal((a * 0.5)[2], vec([0, 1])) and torch.equal((0.5 * a)[1], vec([0.5, 0]))
    assert torch.equal((-a)[1], vec([-1, 0])) and torch.equal((a / 2)[2], vec([0, 1]))
    mixed = a + 0.5 * b
    assert torch.equal(mixed[2], vec([0.5, 2.5]))
    assert torch.equal(a[1], vec([1, 0]))  # operands are left alone
    assert (a * 2).meta["derived"] == ["mul 2"]


def test_arithmetic_refuses_vectors_that_do_not_combine():
    with pytest.raises(ValueError, match="width"):
        SteeringVector({0: vec([1, 0])}) + SteeringVector({0: vec([1, 0, 0])})
    fp = {"fingerprint": {"id": "aaa"}}
    with pytest.raises(ValueError, match="different models"):
        SteeringVector({0: vec([1, 0])}, meta=fp) + SteeringVector(
            {0: vec([1, 0])}, meta={"fingerprint": {"id": "bbb"}}
        )
    with pytest.raises(ValueError, match="1-D"):
        SteeringVector({0: torch.zeros(2, 2)})


def test_selection_helpers():
    v = SteeringVector({1: vec([3, 4]), 2: vec([0, 2])})
    assert v.only([2]).layers == [2]
    assert v.at_layer(0, source=1).layers == [0] and torch.equal(v.at_layer(0, source=1)[0], vec([3, 4]))
    assert v.norms() == {1: 5.0, 2: 2.0}
    assert torch.allclose(v.unit()[1], vec([0.6, 0.8]))
    with pytest.raises(ValueError, match="no layer"):
        v.only([5])


# --------------------------------------------------------------------------------------------------- save / load


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return make_tiny_qwen3(tiny_tokenizer)


def test_save_load_round_trip_keeps_tensors_and_provenance(tmp_path, model, tiny_tokenizer):
    meta = vector_meta(
        model,
        tiny_tokenizer,
        method="mean_diff",
        source="twins",
        position="decision",
        split="mine",
        probe_metrics={"acc": 0.9},
        positive="clarify",
        negative="call_tool",
    )
    v = SteeringVector({0: torch.randn(64), 1: torch.randn(64)}, meta=meta)
    path = v.save(tmp_path / "v.safetensors")
    side = json.loads(sidecar_path(path).read_text())
    assert side["layers"] == [0, 1] and side["hook"] == "resid_post" and side["d_model"] == 64
    assert set(side["norms"]) == {"0", "1"}
    assert side["meta"]["fingerprint"]["hidden_size"] == 64
    assert side["meta"]["chat_template_hash"] and side["meta"]["method"] == "mean_diff"
    assert side["meta"]["position"] == "decision" and side["meta"]["split"] == "mine"
    assert side["meta"]["probe_metrics"] == {"acc": 0.9}
    loaded = SteeringVector.load(path, model=model, tokenizer=tiny_tokenizer)
    assert loaded.layers == [0, 1]
    assert all(torch.equal(loaded[k], v[k]) for k in v.layers)
    assert loaded.meta == json.loads(json.dumps(meta))


@pytest.mark.parametrize(
    ("other", "field"),
    [
        ({"hidden": 32}, "hidden size"),
        ({"layers": 3}, "layers"),
        ({"seed": 1}, "computed on model"),
    ],
)
def test_load_refuses_another_model(tmp_path, model, tiny_tokenizer, other, field):
    v = SteeringVector(
        {1: torch.randn(64)},
        meta=vector_meta(
            model,
            tiny_tokenizer,
            method="mean_diff",
            source="twins",
            position="decision",
            positive="clarify",
            negative="call_tool",
        ),
    )
    path = v.save(tmp_path / "v.safetensors")
    different = make_tiny_qwen3(tiny_tokenizer, **other)
    with pytest.raises(InputError, match=field) as err:
        SteeringVector.load(path, model=different)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_load_refuses_another_chat_template(tmp_path, model, tiny_tokenizer):
    import copy

    v = SteeringVector(
        {1: torch.randn(64)},
        meta=vector_meta(
            model,
            tiny_tokenizer,
            method="mean_diff",
            source="twins",
            position="decision",
            positive="clarify",
            negative="call_tool",
        ),
    )
    path = v.save(tmp_path / "v.safetensors")
    other = copy.deepcopy(tiny_tokenizer)
    other.chat_template = "{{ messages[0].content }}"
    with pytest.raises(InputError, match="chat template"):
        SteeringVector.load(path, model=model, tokenizer=other)


def test_load_names_a_missing_sidecar(tmp_path):
    path = SteeringVector({0: torch.randn(4)}).save(tmp_path / "v.safetensors")
    sidecar_path(path).unlink()
    with pytest.raises(InputError, match="sidecar"):
        SteeringVector.load(path)


# --------------------------------------------------------------------------------------------------- aggregators


def test_mean_diff_is_the_difference_of_class_means():
    pos = vec([[1, 1], [3, 1]])
    neg = vec([[0, 0], [0, 2], [0, 4]])
    assert torch.allclose(mean_diff(pos, neg), vec([2, -1]))


def test_pca_paired_finds_the_shared_direction_with_the_mean_differences_sign_and_norm():
    g = torch.Generator().manual_seed(0)
    direction = vec([3, 4, 0, 0]) / 5
    neg = torch.randn(40, 4, generator=g)
    scale = 2.0 + torch.rand(40, 1, generator=g)
    pos = neg + scale * direction + 0.05 * torch.randn(40, 4, generator=g)
    v = pca_paired(pos, neg)
    md = mean_diff(pos, neg)
    assert torch.nn.functional.cosine_similarity(v, direction, dim=0) > 0.99
    assert torch.isclose(v.norm(), md.norm())
    assert torch.allclose(pca_paired(neg, pos), -v, atol=1e-5)  # sign follows the mean difference
    with pytest.raises(ValueError, match="paired"):
        pca_paired(pos[:3], neg)


def test_probe_weights_point_toward_the_positive_class_with_the_mean_difference_norm():
    g = torch.Generator().manual_seed(1)
    neg = torch.randn(60, 8, generator=g)
    pos = torch.randn(60, 8, generator=g) + vec([3, 0, 0, 0, 0, 0, 0, 0])
    v = probe_weights(pos, neg)
    assert torch.isclose(v.norm(), mean_diff(pos, neg).norm())
    assert v[0] > 0 and v[0].abs() == v.abs().max()


def test_twin_pairs_follow_links_written_on_either_side():
    ids = ["a", "b", "c", "d", "e"]
    labels = ["clarify", "call_tool", "clarify", "call_tool", "clarify"]
    twins = {"a": "b", "d": "c", "e": None}  # c's link is written on d only; e has no twin
    groups = twin_pairs(ids, labels, twins, "clarify", "call_tool")
    assert (groups.positive, groups.negative, groups.paired) == ([0, 2], [1, 3], True)
    classes = class_groups(labels, "clarify", "call_tool")
    assert (classes.positive, classes.negative, classes.paired) == ([0, 2, 4], [1, 3], False)


def test_cosine_consistency():
    same = cosine_consistency(vec([[1, 0], [2, 0], [3, 0]]))
    assert same.mean_pairwise == pytest.approx(1.0) and same.with_mean == pytest.approx([1.0, 1.0, 1.0])
    orth = cosine_consistency(vec([[1, 0], [0, 1]]))
    assert orth.mean_pairwise == pytest.approx(0.0)
    assert orth.with_mean == pytest.approx([2**-0.5, 2**-0.5])


def test_vectors_from_captured_twins_and_classes(model, tiny_tokenizer):
    from tests.test_steering_apply import TAUGHT
    from toolprior.probes.capture import capture_cases

    acts = capture_cases(
        model, tiny_tokenizer, TAUGHT, ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"], "decision"
    )
    twins = compute_vector(acts, [0, 1], "mean_diff", "twins", cases=TAUGHT, positive="clarify", negative="call_tool")
    x = acts.layer(1)
    assert torch.allclose(twins[1], x[0] - x[1])  # the one twin pair: amb (clarify) - one (call_tool)
    classes = compute_vector(acts, [1], "mean_diff", "classes", positive="clarify", negative="call_tool")
    assert torch.allclose(classes[1], (x[0] + x[2]) / 2 - x[1])
    assert twins.meta["n"] == {"clarify": 1, "call_tool": 1} and classes.meta["n"] == {"clarify": 2, "call_tool": 1}
    with pytest.raises(ValueError, match="twins"):
        compute_vector(acts, [1], "pca_paired", "classes", positive="clarify", negative="call_tool")


def test_compute_from_cases_records_provenance(model, tiny_tokenizer):
    from tests.test_steering_apply import TAUGHT

    v = compute_from_cases(
        model, tiny_tokenizer, TAUGHT, [1], "probe", "classes", "prompt_end", positive="clarify", negative="call_tool"
    )
    assert v.layers == [1] and v.meta["method"] == "probe" and v.meta["position"] == "prompt_end"
    assert v.meta["fingerprint"]["id"] and v.meta["split"] == "mine" and v.meta["direction"] == "clarify - call_tool"
    assert v.meta["probe_metrics"]["1"]["train_acc"] == 1.0


def test_an_nf4_models_fingerprint_does_not_change_when_it_runs(tmp_path, tiny_tokenizer):
    """bitsandbytes repacks NF4 weights for its CPU kernel at the first inference forward pass (on CPUs with
    AVX512-BF16); a vector computed after the model ran must still load on a freshly loaded copy."""
    from tests.test_capture import arch_model
    from toolprior.fingerprint import model_fingerprint
    from toolprior.modeling import load_model

    arch_model("llama", tiny_tokenizer).save_pretrained(tmp_path / "llama")
    tiny_tokenizer.save_pretrained(tmp_path / "llama")
    model = load_model(tmp_path / "llama", quantize="nf4")
    fresh = model_fingerprint(model).id
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    states = [getattr(p, "quant_state", None) for p in model.parameters()]
    repacked = any(getattr(s, "packing_format_for_cpu", False) for s in states)
    assert model_fingerprint(model).id == fresh
    assert model_fingerprint(load_model(tmp_path / "llama", quantize="nf4")).id == fresh
    if not repacked:  # this CPU has no AVX512-BF16 kernel: the layout never changed, nothing else to check
        return
    ran_weight = next(p for p, s in zip(model.parameters(), states, strict=True) if s is not None)
    assert getattr(ran_weight.quant_state, "packing_format_for_cpu", False)  # the fingerprint left the model alone
