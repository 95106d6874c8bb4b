"""Probes, grouped cross-validation, control tasks and the report block, on synthetic activations with a planted
label-carrying layer (real sklearn, real safetensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolprior.actions import ACTION_NAMES
from toolprior.fingerprint import Fingerprint
from toolprior.probes.activations import Activations
from toolprior.probes.controls import permuted_fold_labels, template_control_labels
from toolprior.probes.cross_validation import cross_validate
from toolprior.probes.fit import calibrate_threshold, fit_probe
from toolprior.probes.folds import BINARY_CLASSES, grouped_folds, stratified_folds
from toolprior.probes.layer_curve import LayerCurve, fit_layer_curve
from toolprior.probes.linear_probe import ProbeWeights
from toolprior.probes.report import json_safe, merge_probe_block, plot_layer_curve, probe_block

PLANTED = 2
D = 24


def planted(n_templates: int = 30, per: int = 6, seed: int = 0, strength: float = 3.0) -> tuple[Activations, list[str]]:
    """Four layers of noise; layer 2 adds a class-specific offset. Every template holds several classes (as twins
    share a template), so template identity says little about the label."""
    rng = np.random.default_rng(seed)
    groups, labels = [], []
    for t in range(n_templates):
        for j in range(per):
            groups.append(f"t{t:02d}")
            labels.append(("call_tool", "clarify")[j % 2] if j < 4 else ACTION_NAMES[(t + j) % 5])
    y = np.asarray(labels)
    tensors = {}
    for layer in range(4):
        x = rng.normal(size=(len(y), D))
        if layer == PLANTED:
            for k, c in enumerate(ACTION_NAMES):
                x[y == c, k] += strength
        tensors[f"blocks.{layer}.hook_resid_post"] = torch.tensor(x, dtype=torch.float32)
    fp = Fingerprint("synthetic", "Synthetic", D, 4, 100, "")
    acts = Activations(tensors, [f"c{i}" for i in range(len(y))], labels, "decision", fp)
    return acts, groups


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.mark.parametrize("method", ["logreg", "mass_mean"])
def test_planted_layer_wins_with_control_near_chance(data, method):
    acts, groups = data
    curve = fit_layer_curve(acts, acts.labels, groups, task="clarify_vs_call_tool", method=method, folds=5, seed=0)
    best = curve.best()
    assert best is not None and best.layer == PLANTED
    strong = curve.row(f"blocks.{PLANTED}.hook_resid_post")
    assert strong.acc > 0.9 and strong.auroc > 0.95
    assert strong.selectivity > 0.3
    assert abs(strong.control_acc - 0.5) < 0.2  # per-template random labels: unpredictable on held-out templates
    assert strong.perm_acc < 0.7
    for row in curve.rows:
        if row.layer != PLANTED:
            assert row.acc < 0.72 and row.auroc < 0.75
        assert row.n == sum(y in BINARY_CLASSES for y in acts.labels) and row.acc_std >= 0
    assert set(curve.probes) == set(acts.hook_names)
    assert curve.classes == BINARY_CLASSES


def test_five_way_probe_finds_the_planted_layer(data):
    acts, groups = data
    curve = fit_layer_curve(acts, None, groups, task="five_way", method="logreg", folds=4, permutations=0)
    assert curve.best().layer == PLANTED
    strong = curve.row(f"blocks.{PLANTED}.hook_resid_post")
    assert strong.acc > 0.8 and strong.auroc > 0.95  # macro one-vs-rest
    assert strong.control_acc < 0.45 and np.isnan(strong.perm_acc)
    assert curve.probes[f"blocks.{PLANTED}.hook_resid_post"].classes == ACTION_NAMES
    mass = fit_layer_curve(acts, None, groups, task="five_way", method="mass_mean", folds=4, permutations=0)
    assert mass.best().layer == PLANTED


def test_grouped_folds_never_put_a_template_on_both_sides(data):
    acts, groups = data
    g = np.asarray(groups)
    splits = grouped_folds(acts.labels, groups, folds=5, seed=3)
    assert len(splits) == 5
    seen_test = []
    for train, test in splits:
        assert not set(g[train]) & set(g[test])
        assert len(set(train) | set(test)) == len(g)
        seen_test.extend(test.tolist())
    assert sorted(seen_test) == list(range(len(g)))  # every row is held out exactly once
    curve = fit_layer_curve(acts, None, groups, folds=5, seed=3, permutations=0, hooks=["blocks.0.hook_resid_post"])
    fold_of_template: dict[str, set[int]] = {}
    binary = [i for i, y in enumerate(acts.labels) if y in BINARY_CLASSES]
    for row, fold in zip(binary, curve.fold_of, strict=True):
        fold_of_template.setdefault(groups[row], set()).add(fold)
    assert all(len(folds) == 1 for folds in fold_of_template.values())


def test_mass_mean_direction_is_the_class_mean_difference(data):
    acts, _ = data
    x = acts.layer(PLANTED)
    y = np.asarray(acts.labels)
    keep = np.isin(y, BINARY_CLASSES)
    probe = fit_probe(x[torch.as_tensor(keep)], y[keep], "mass_mean", classes=BINARY_CLASSES)
    diff = x[torch.as_tensor(y == "clarify")].double().mean(0) - x[torch.as_tensor(y == "call_tool")].double().mean(0)
    cosine = torch.dot(probe.direction.double(), diff / diff.norm())
    assert float(cosine) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("method", ["logreg", "mass_mean"])
def test_direction_in_original_space_reproduces_predictions(data, method):
    acts, _ = data
    x = acts.layer(PLANTED) * 7.0 + 3.0  # far from standardised, so undoing the scaler matters
    y = np.asarray(acts.labels)
    keep = torch.as_tensor(np.isin(y, BINARY_CLASSES))
    probe = fit_probe(x[keep], y[keep.numpy()], method)
    scores = x[keep].double() @ probe.weights_original[0] + probe.bias_original[0]
    assert torch.allclose(scores, probe.decision_function(x[keep]), atol=1e-8)
    along = x[keep].double() @ probe.direction.double()
    offset = probe.bias_original[0] / probe.weights_original[0].norm()
    predicted = ["clarify" if v else "call_tool" for v in (along + offset >= 0).tolist()]
    assert predicted == probe.predict(x[keep])
    assert torch.allclose(probe.predict_proba(x[keep])[:, 1], torch.sigmoid(scores), atol=1e-8)
    assert probe.class_direction("call_tool").allclose(-probe.direction)


def test_calibrate_threshold_balanced_and_recall():
    scores = np.asarray([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    truth = np.asarray([0, 0, 0, 1, 0, 1, 1, 1])
    balanced = calibrate_threshold(scores, truth, "balanced")
    assert balanced in (0.35, 0.7)
    high = calibrate_threshold(scores, truth, "recall@0.75")
    assert high == 0.7  # the highest threshold that still flags 3 of the 4 positives
    assert calibrate_threshold(torch.as_tensor(scores), [bool(t) for t in truth], "recall@1.0") == 0.35
    with pytest.raises(ValueError):
        calibrate_threshold(scores, truth, "precision@0.9")
    with pytest.raises(ValueError):
        calibrate_threshold(scores, np.ones(8), "balanced")


def test_template_control_labels_are_per_template_and_keep_the_balance(data):
    acts, groups = data
    control = template_control_labels(acts.labels, groups, seed=1)
    by_template: dict[str, set[str]] = {}
    for g, c in zip(groups, control, strict=True):
        by_template.setdefault(g, set()).add(str(c))
    assert all(len(v) == 1 for v in by_template.values())
    real = {c: acts.labels.count(c) for c in set(acts.labels)}
    got = {c: int((control == c).sum()) for c in real}
    assert all(abs(got[c] - real[c]) <= 6 for c in real)  # within one template's size
    assert not np.array_equal(control, template_control_labels(acts.labels, groups, seed=2))
    splits = grouped_folds(acts.labels, groups, 3)
    shuffled = permuted_fold_labels(acts.labels, splits, seed=0)
    for (train, test), labels in zip(splits, shuffled, strict=True):
        assert list(labels[test]) == [acts.labels[i] for i in test]
        assert sorted(labels[train]) == sorted(acts.labels[i] for i in train)


def test_template_control_is_learnable_without_grouping_and_chance_with_it():
    """The docstring's claim: with template identity in the features, ungrouped folds let a probe memorise the
    per-template control labels; grouped folds make them unpredictable."""
    rng = np.random.default_rng(0)
    groups = [f"t{t}" for t in range(20) for _ in range(8)]
    identity = np.eye(20)[[int(g[1:]) for g in groups]] * 3 + rng.normal(size=(160, 20)) * 0.3
    labels = [("call_tool", "clarify")[i % 2] for i in range(160)]
    control = template_control_labels(labels, groups, seed=0)
    grouped = cross_validate(identity, control, grouped_folds(control, groups, 5), classes=BINARY_CLASSES)
    memorised = cross_validate(identity, control, stratified_folds(control, 5), classes=BINARY_CLASSES)
    assert memorised.mean("acc") > 0.95
    assert grouped.mean("acc") < 0.7


def test_probe_weights_round_trip_through_safetensors(tmp_path, data):
    acts, groups = data
    curve = fit_layer_curve(acts, None, groups, task="five_way", folds=3, permutations=0)
    curve.probes[f"blocks.{PLANTED}.hook_resid_post"].threshold = 0.3
    folder = curve.probe_weights().save(tmp_path / "probes")
    assert sorted(p.name for p in folder.iterdir()) == ["probes.json", "probes.safetensors"]
    loaded = ProbeWeights.load(folder)
    assert loaded.task == "five_way" and loaded.fingerprint == acts.fingerprint
    x = acts.layer(PLANTED)
    before = curve.probes[f"blocks.{PLANTED}.hook_resid_post"]
    after = loaded[f"blocks.{PLANTED}.hook_resid_post"]
    assert torch.equal(before.predict_proba(x), after.predict_proba(x))
    assert after.threshold == 0.3 and after.classes == ACTION_NAMES


def test_curve_json_and_report_block_follow_the_contract(tmp_path, data):
    acts, groups = data
    curve = fit_layer_curve(acts, None, groups, folds=3, permutations=1)
    again = LayerCurve.load(curve.save(tmp_path / "curve.json"))
    assert [r.acc for r in again.rows] == [r.acc for r in curve.rows] and again.fold_of == curve.fold_of
    base = fit_layer_curve(planted(seed=5, strength=0.0)[0], None, groups, folds=3, permutations=0)
    block = probe_block(curve, base)
    assert block["position"] == "decision" and block["best_layer"] == PLANTED
    for row in block["layers"]:
        assert {"layer", "acc", "control_acc", "selectivity", "base_acc"} <= set(row)
        assert row["selectivity"] == pytest.approx(row["acc"] - row["control_acc"], abs=1e-5)
    json.dumps(json_safe(block), allow_nan=False)
    # best_layer only among selective layers: with every selectivity <= 0 there is none
    for row in curve.rows:
        row.selectivity = -0.01
    assert probe_block(curve)["best_layer"] is None
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"methods": {"sft": {"overall": 0.7}}}))
    merged = merge_probe_block(report, block)
    assert merged["methods"] == {"sft": {"overall": 0.7}} and merged["probe"]["best_layer"] == PLANTED
    png = plot_layer_curve(again, tmp_path / "plots" / "curve.png", base=base)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temporary file left behind
