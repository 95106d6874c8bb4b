"""Computing steering vectors from captured activations: small aggregator functions, one signature each.

    acts = capture_cases(model, tokenizer, cases, ["blocks.2.hook_resid_post"], "decision")
    vector = compute_vector(acts, [2], "mean_diff", "twins", cases=cases, positive="clarify", negative="call_tool")
    vector = compute_from_cases(model, tokenizer, cases, [2, 3], "pca_paired", "twins",
                                positive="clarify", negative="call_tool")

The two labels are always given (the library has no project default); from plain text pairs instead of cases, see
`steering.from_pairs.vector_from_pairs`. An aggregator maps (positive rows [N, d], negative rows [M, d]) to one
direction [d], so `+alpha * v` pushes toward the positive side:

- ``mean_diff``   mean(positive) - mean(negative). With twins the rows are paired, so this equals the mean of
                  the paired differences.
- ``pca_paired``  the first principal component of the paired differences positive_i - negative_i (uncentred,
                  so it is the direction the differences share, as in steering-vectors' pca aggregator), its sign
                  aligned with the mean difference and scaled to the mean difference's norm. Needs twins.
- ``probe``       the direction of a linear probe (`probes.fit.fit_probe`, logistic regression, positive class
                  positive) fitted on the two sets, mapped back to the activation space, sign aligned with and
                  scaled to the mean difference's norm. Its training accuracy goes into the vector's meta.

Sources: ``twins`` pairs each positive case with its `Case.twin` when the twin is a negative case (a minimal pair:
the same text with one change that flips the right action), so everything else cancels; ``classes`` takes every
positive and every negative row (class means).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.probes.capture import capture_cases
from toolprior.probes.fit import fit_probe
from toolprior.probes.hook_points import hook_name
from toolprior.steering.consistency import cosine_consistency
from toolprior.steering.vector import SteeringVector, vector_meta
from toolprior.steering_names import METHODS, SOURCES

if TYPE_CHECKING:
    from toolprior.cases import Case
    from toolprior.probes.activations import Activations


Aggregator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _rows(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty [N, d] tensor, got shape {tuple(x.shape)}")
    return x.to(torch.float32)


def mean_diff(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """mean(positive) - mean(negative)."""
    return _rows(positive).mean(dim=0) - _rows(negative).mean(dim=0)


def _aligned(direction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`direction` pointed the way `reference` points and scaled to its norm."""
    unit = direction / direction.norm().clamp_min(1e-12)
    if torch.dot(unit, reference) < 0:
        unit = -unit
    return unit * reference.norm()


def pca_paired(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """First principal component of the paired differences positive_i - negative_i (uncentred), sign aligned with
    and scaled to their mean."""
    pos, neg = _rows(positive), _rows(negative)
    if pos.shape != neg.shape:
        raise ValueError(f"pca_paired needs paired rows, got {pos.shape[0]} positive and {neg.shape[0]} negative")
    diffs = pos - neg
    _, _, vh = torch.linalg.svd(diffs.double(), full_matrices=False)
    return _aligned(vh[0].float(), diffs.mean(dim=0))


def fit_direction_probe(positive: torch.Tensor, negative: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """(unit direction toward positive in the activation space, metrics) of a logistic probe on the two sets."""

    pos, neg = _rows(positive), _rows(negative)
    x = torch.cat([pos, neg])
    y = ["positive"] * pos.shape[0] + ["negative"] * neg.shape[0]
    probe = fit_probe(x, y, classes=("negative", "positive"))
    predicted = probe.predict(x)
    metrics = {
        "train_acc": round(sum(p == t for p, t in zip(predicted, y, strict=True)) / len(y), 4),
        "n": len(y),
        "C": probe.C,
        "method": probe.method,
    }
    return probe.direction.float(), metrics


def probe_weights(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """A logistic probe's direction (positive vs negative), sign aligned with and scaled to the mean difference."""
    direction, _ = fit_direction_probe(positive, negative)
    return _aligned(direction, mean_diff(positive, negative))


AGGREGATORS: dict[str, Aggregator] = {"mean_diff": mean_diff, "pca_paired": pca_paired, "probe": probe_weights}


# ------------------------------------------------------------------------------------------------------ pairing


@dataclass(frozen=True)
class Groups:
    """Which activation rows are positive and negative; `paired` when row positive[i] is the twin of negative[i]."""

    positive: list[int]
    negative: list[int]
    paired: bool


def twin_pairs(
    case_ids: Sequence[str], labels: Sequence[str], twins: Mapping[str, str | None], positive: str, negative: str
) -> Groups:
    """Rows (positive_i, negative_i) whose cases are each other's twin (either link suffices), each pair once."""
    index = {cid: i for i, cid in enumerate(case_ids)}
    linked: dict[str, list[str]] = {}
    for a, b in twins.items():  # the link may be written on either side only
        if b:
            linked.setdefault(a, []).append(b)
            linked.setdefault(b, []).append(a)
    pos_rows, neg_rows = [], []
    used: set[int] = set()
    for i, cid in enumerate(case_ids):
        if labels[i] != positive or i in used:
            continue
        partners = [index[p] for p in linked.get(cid, []) if p in index]
        j = next((k for k in partners if labels[k] == negative and k not in used), None)
        if j is None:
            continue
        pos_rows.append(i)
        neg_rows.append(j)
        used.update((i, j))
    return Groups(pos_rows, neg_rows, paired=True)


def class_groups(labels: Sequence[str], positive: str, negative: str) -> Groups:
    return Groups(
        [i for i, lab in enumerate(labels) if lab == positive],
        [i for i, lab in enumerate(labels) if lab == negative],
        paired=False,
    )


def groups_for(
    acts: Activations,
    source: str,
    cases: Sequence[Case] | None = None,
    *,
    positive: str,
    negative: str,
) -> Groups:
    """The positive / negative rows of `acts` for `source` (twins need `cases` for their links)."""
    if source == "classes":
        groups = class_groups(acts.labels, positive, negative)
    elif source == "twins":
        if cases is None:
            raise ValueError("source='twins' needs the cases (for their twin links)")
        groups = twin_pairs(acts.case_ids, acts.labels, {c.id: c.twin for c in cases}, positive, negative)
    else:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if not groups.positive or not groups.negative:
        what = "twin pairs" if source == "twins" else "rows of each class"
        raise ValueError(f"no {what} labelled {positive} / {negative} among {len(acts)} activation rows")
    return groups


def paired_differences(acts: Activations, layer: int, groups: Groups) -> torch.Tensor:
    """[P, d] positive_i - negative_i at `layer` (twin groups only)."""
    if not groups.paired:
        raise ValueError("paired differences need twin groups")
    x = acts.layer(layer).to(torch.float32)
    return x[groups.positive] - x[groups.negative]


# ------------------------------------------------------------------------------------------------------ vectors


def compute_vector(
    acts: Activations,
    layers: Sequence[int],
    method: str = "mean_diff",
    source: str = "twins",
    *,
    cases: Sequence[Case] | None = None,
    positive: str,
    negative: str,
    meta: Mapping[str, Any] | None = None,
) -> SteeringVector:
    """One vector with a direction at each of `layers`, from activations captured at `blocks.{i}.hook_resid_post`.

    `meta` is stored as given, plus the counts and (method probe) the probe's training accuracy per layer."""
    if method not in AGGREGATORS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    groups = groups_for(acts, source, cases, positive=positive, negative=negative)
    return vector_from_groups(
        acts, layers, groups, method, positive=positive, negative=negative, source=source, meta=meta
    )


def vector_from_groups(
    acts: Activations,
    layers: Sequence[int],
    groups: Groups,
    method: str = "mean_diff",
    *,
    positive: str,
    negative: str,
    source: str,
    meta: Mapping[str, Any] | None = None,
) -> SteeringVector:
    """One vector from given positive / negative rows of `acts` (what `compute_vector` and
    `steering.from_pairs.vector_from_pairs` share); `positive` / `negative` name the two sides in the metadata."""
    if method not in AGGREGATORS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "pca_paired" and not groups.paired:
        raise ValueError("method pca_paired needs source='twins' (paired differences)")
    vectors: dict[int, torch.Tensor] = {}
    probe_metrics: dict[str, Any] = {}
    for layer in layers:
        x = acts.layer(layer).to(torch.float32)
        pos, neg = x[groups.positive], x[groups.negative]
        if method == "probe":
            direction, metrics = fit_direction_probe(pos, neg)
            vectors[layer] = _aligned(direction, mean_diff(pos, neg))
            probe_metrics[str(layer)] = metrics
        else:
            vectors[layer] = AGGREGATORS[method](pos, neg)
    full = dict(meta or {})
    if groups.paired and len(groups.positive) >= 2:
        full["cosine_consistency"] = {
            str(layer): round(cosine_consistency(paired_differences(acts, layer, groups)).mean_pairwise, 4)
            for layer in layers
        }
    full.setdefault("method", method)
    full.setdefault("source", source)
    full.setdefault("position", acts.position)
    full["n"] = {positive: len(groups.positive), negative: len(groups.negative)}
    if probe_metrics:
        full["probe_metrics"] = {**probe_metrics, **(full.get("probe_metrics") or {})}
    return SteeringVector(vectors, meta=full)


def capture_for_vector(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    layers: Sequence[int],
    position: str = "decision",
    *,
    positive: str,
    negative: str,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[Activations, list[Case]]:
    """(activations at `blocks.{i}.hook_resid_post`, the cases they belong to) for the cases of the two classes.
    position "decision": the gold turn cut after `</think>`, + the decision tokens' suffix
    (`probes.capture.case_texts`); "prompt_end": the prompt alone."""

    wanted = [c for c in cases if c.expected_action.value in (positive, negative)]
    if not wanted:
        raise ValueError(f"no {positive} or {negative} cases to compute a vector from")
    acts = capture_cases(
        model,
        tokenizer,
        wanted,
        [hook_name(i, "resid_post") for i in layers],
        position,
        batch_size=batch_size,
        progress=progress,
    )
    return acts, wanted


def compute_from_cases(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    layers: Sequence[int],
    method: str = "mean_diff",
    source: str = "twins",
    position: str = "decision",
    *,
    positive: str,
    negative: str,
    batch_size: int = 16,
    progress: bool = False,
    probe_metrics: Mapping[str, Any] | None = None,
    acts: Activations | None = None,
) -> SteeringVector:
    """`capture_for_vector` (unless `acts` of these cases are given) then `compute_vector`, with full provenance
    in meta (fingerprint, chat template hash, method, source, position, splits)."""
    wanted = [c for c in cases if c.expected_action.value in (positive, negative)]
    if acts is None:
        acts, wanted = capture_for_vector(
            model,
            tokenizer,
            cases,
            layers,
            position,
            positive=positive,
            negative=negative,
            batch_size=batch_size,
            progress=progress,
        )
    splits = sorted({c.split for c in wanted})
    meta = vector_meta(
        model,
        tokenizer,
        method=method,
        source=source,
        position=position,
        split=",".join(splits),
        positive=positive,
        negative=negative,
        probe_metrics=probe_metrics,
    )
    return compute_vector(acts, layers, method, source, cases=wanted, positive=positive, negative=negative, meta=meta)
