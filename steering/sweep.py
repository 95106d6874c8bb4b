"""Choosing where and how hard to steer, on the `mine` split only, with controls.

    result = sweep(model, tokenizer, mine, vector, layers=[1, 2, 3], alphas=symmetric_alphas(8, 4))
    best = choose(result, min_call_tool=0.9)      # max clarify accuracy with call_tool accuracy >= 0.9
    ctrl = controls(model, tokenizer, mine, vector, layer=best.layer, alpha=best.alpha, seeds=(0, 1, 2))

Every setting is scored by `evals.harness.evaluate` + `evals.scoring.score` on the cases given, which must not
come from eval / eval_novel (InputError): layer and alpha chosen on held-out cases would make the held-out numbers
tuned ones. Per (layer, alpha) a `SweepPoint` holds clarify and call_tool accuracy, overall accuracy, and the share
of cases that moved the wrong way (correct unsteered, wrong steered) or the right way.

Batched alpha sweep: with single-turn scoring (`HarnessConfig.max_turns == 1`), the whole alpha grid of a layer
runs as ONE evaluation: each case is repeated once per alpha and the steering factory gives every row its own
alpha (a per-row alpha tensor), so the grid shares batches instead of running len(alphas) times.

Controls at a chosen (layer, alpha): random directions of the same norm at the same layer (one per seed), and the
same vector moved to other layers. A real effect beats both.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from toolprior.atomic import atomic_write_text
from toolprior.evals.harness import HarnessConfig, evaluate
from toolprior.evals.scoring import score
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import decoder_layers
from toolprior.steering.apply import steering_factory
from toolprior.steering.conditional import refuse_held_out
from toolprior.steering.vector import SteeringVector

if TYPE_CHECKING:
    from toolprior.cases import Case
    from toolprior.evals.harness import HarnessConfig
    from toolprior.steering.operators import Operator
    from toolprior.verdict import Verdict

CLARIFY, CALL_TOOL = "clarify", "call_tool"
# how far below the unsteered call_tool accuracy a chosen setting may fall when no absolute floor is given
MAX_CALL_TOOL_DROP = 0.05


@dataclass
class SweepPoint:
    """The scores of one steering setting. `label`: "vector" for the vector itself, "baseline" for no steering,
    "random:<seed>" and "layer:<source>-><target>" for controls. Accuracies are None where no case expects the
    action; `moved_wrong` / `moved_right` are shares of all cases."""

    label: str
    layer: int | None
    alpha: float
    n: int
    clarify_acc: float | None
    clarify_n: int
    call_tool_acc: float | None
    call_tool_n: int
    overall: float | None
    moved_wrong: float
    moved_right: float
    norm: float | None = None
    scores: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self, scores: bool = True) -> dict[str, Any]:
        """The point as a plain dict; `scores=False` leaves the per-case scores out (what a saved sweep keeps)."""
        d = asdict(self)
        if not scores:
            d.pop("scores")
        return d


@dataclass
class SweepResult:
    """A sweep: the unsteered baseline and one point per setting, on the cases `case_ids` (splits `splits`)."""

    baseline: SweepPoint
    points: list[SweepPoint]
    case_ids: list[str]
    splits: list[str]
    positions: str = "all"
    operator: str = "add"
    vector_meta: dict[str, Any] = field(default_factory=dict)
    harness: dict[str, Any] | None = None  # the HarnessConfig it ran under (None in files written before it was kept)

    @property
    def layers(self) -> list[int]:
        return sorted({p.layer for p in self.points if p.layer is not None})

    @property
    def alphas(self) -> list[float]:
        return sorted({p.alpha for p in self.points})

    def point(self, layer: int, alpha: float, label: str = "vector") -> SweepPoint:
        for p in self.points:
            if p.label == label and p.layer == layer and math.isclose(p.alpha, alpha):
                return p
        raise KeyError(f"no {label} point at layer {layer}, alpha {alpha}")

    def grid(
        self, metric: str = "clarify_acc", label: str = "vector"
    ) -> tuple[list[int], list[float], list[list[float]]]:
        """(layers, alphas, values[layer][alpha]) of `metric` (NaN where missing)."""
        layers, alphas = self.layers, self.alphas
        values = [[math.nan] * len(alphas) for _ in layers]
        for p in self.points:
            if p.label == label and p.layer in layers:
                value = getattr(p, metric)
                values[layers.index(p.layer)][alphas.index(p.alpha)] = math.nan if value is None else float(value)
        return layers, alphas, values

    def to_dict(self, scores: bool = False) -> dict[str, Any]:
        return {
            "chosen_on": self.splits,
            "n": len(self.case_ids),
            "positions": self.positions,
            "operator": self.operator,
            "baseline": self.baseline.to_dict(scores),
            "points": [p.to_dict(scores) for p in self.points],
            "case_ids": self.case_ids,
            "vector_meta": self.vector_meta,
            "harness": self.harness,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:

        target = Path(path)
        atomic_write_text(target, json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return target

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        """A sweep as `to_dict` wrote it (per-case scores, when left out there, are empty here)."""
        return cls(
            baseline=SweepPoint(**data["baseline"]),
            points=[SweepPoint(**p) for p in data["points"]],
            case_ids=list(data["case_ids"]),
            splits=list(data["chosen_on"]),
            positions=data.get("positions", "all"),
            operator=data.get("operator", "add"),
            vector_meta=dict(data.get("vector_meta") or {}),
            harness=data.get("harness"),
        )


# ---------------------------------------------------------------------------------------------------- scoring


def _acc(verdicts: Sequence[Verdict], action: str) -> tuple[float | None, int]:
    group = [v for v in verdicts if v.expected == action]
    return (sum(v.correct for v in group) / len(group) if group else None), len(group)


def score_point(
    label: str,
    layer: int | None,
    alpha: float,
    verdicts: Sequence[Verdict],
    baseline: Sequence[Verdict] | None,
    norm: float | None = None,
) -> SweepPoint:
    """A `SweepPoint` of `verdicts`, compared case by case with the unsteered `baseline` (same order)."""

    clarify, n_clarify = _acc(verdicts, CLARIFY)
    call, n_call = _acc(verdicts, CALL_TOOL)
    n = len(verdicts)
    wrong = right = 0
    if baseline is not None:
        for before, after in zip(baseline, verdicts, strict=True):
            wrong += before.correct and not after.correct
            right += after.correct and not before.correct
    return SweepPoint(
        label=label,
        layer=layer,
        alpha=float(alpha),
        n=n,
        clarify_acc=clarify,
        clarify_n=n_clarify,
        call_tool_acc=call,
        call_tool_n=n_call,
        overall=sum(v.correct for v in verdicts) / n if n else None,
        moved_wrong=wrong / n if n else 0.0,
        moved_right=right / n if n else 0.0,
        norm=norm,
        scores=score(verdicts),
    )


def _unsteered(
    model: Any, tokenizer: Any, cases: Sequence[Case], config: HarnessConfig, baseline: Sequence[Verdict] | None
) -> tuple[Sequence[Verdict], SweepPoint]:
    """The unsteered verdicts of `cases` (the caller's, checked against the cases, or evaluated here) and their
    point."""
    if baseline is None:
        baseline = _evaluate(model, tokenizer, cases, config, None, "baseline")
    elif [v.id for v in baseline] != [c.id for c in cases]:
        raise ValueError("baseline must hold one verdict per case, in the cases' order")
    return baseline, score_point("baseline", None, 0.0, baseline, baseline)


def _ran_as(
    earlier: SweepResult | None, cases: Sequence[Case], positions: str, config: HarnessConfig, base_point: SweepPoint
) -> bool:
    """Whether `earlier` ran on these cases in this order, at these positions, under this harness, and scored its
    baseline as `base_point` does: only then are its points (and moved-right / wrong shares) valid here."""
    return (
        earlier is not None
        and earlier.case_ids == [c.id for c in cases]
        and earlier.positions == positions
        and earlier.harness == dataclasses.asdict(config)
        and earlier.baseline.to_dict(scores=False) == base_point.to_dict(scores=False)
    )


def _operator_name(operator: str | Operator) -> str:
    return operator if isinstance(operator, str) else getattr(operator, "__name__", "custom")


def _evaluate(
    model: Any, tokenizer: Any, cases: Sequence[Case], config: HarnessConfig, steer: Any, desc: str
) -> list[Verdict]:

    return evaluate(model, tokenizer, cases, config=config, steer=steer, progress=False, desc=desc)


def run_alphas(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    vector: SteeringVector,
    alphas: Sequence[float],
    config: HarnessConfig,
    *,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    batched: bool = True,
) -> list[list[Verdict]]:
    """The verdicts of `cases` steered with `vector` at each alpha (one list per alpha). Batched (single-turn
    only): one evaluation over the cases repeated per alpha, each row with its own alpha."""

    kw: dict[str, Any] = {"positions": positions, "operator": operator, "keep_norm": keep_norm, "tokenizer": tokenizer}
    if batched and config.max_turns == 1 and len(alphas) > 1:
        repeated = [c for _ in alphas for c in cases]
        per_row = torch.tensor([float(a) for a in alphas for _ in cases])
        # a batch holds `batch_size` cases at every alpha: the copies of a case share its prefill and prompt reads
        wide = dataclasses.replace(config, batch_size=config.batch_size * len(alphas))
        verdicts = _evaluate(model, tokenizer, repeated, wide, steering_factory(model, vector, per_row, **kw), "sweep")
        n = len(cases)
        return [verdicts[i * n : (i + 1) * n] for i in range(len(alphas))]
    return [
        _evaluate(model, tokenizer, cases, config, steering_factory(model, vector, float(a), **kw), f"alpha {a:g}")
        for a in alphas
    ]


def sweep(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    vector: SteeringVector,
    layers: Sequence[int],
    alphas: Sequence[float],
    *,
    config: HarnessConfig | None = None,
    positions: str = "all",
    operator: str | Operator = "add",
    keep_norm: bool = False,
    batched: bool = True,
    progress: bool = False,
    baseline: Sequence[Verdict] | None = None,
    kept: SweepResult | None = None,
) -> SweepResult:
    """Score `vector` at each layer (alone) x alpha on `cases` (the mine split; eval cases are refused).

    Negative alphas give the other half of the dose-response. `config` defaults to single-turn scoring.
    `baseline`: the unsteered verdicts of `cases` under the same config, when the caller has them already (several
    vectors swept on the same cases); else they are evaluated here. `kept`: an earlier sweep of the same vector
    (`saved_sweep`); when it ran on the same cases, positions and harness and its baseline scores as this one's
    does, only the layer x alpha points it lacks are run (a grid widened after a sweep costs only its new alphas);
    otherwise it is ignored, since its moved-right / moved-wrong shares were counted against other verdicts."""

    refuse_held_out(cases, "a steering sweep")
    if not cases:
        raise ValueError("no cases to sweep on")
    config = config or HarnessConfig(max_turns=1)
    baseline, base_point = _unsteered(model, tokenizer, cases, config, baseline)
    usable = _ran_as(kept, cases, positions, config, base_point)
    done = {(p.layer, float(p.alpha)): p for p in kept.points if p.label == "vector"} if kept and usable else {}
    points = []
    for layer in tqdm(list(layers), desc="sweep layers", disable=not progress):
        single = vector.only([layer])
        missing = [a for a in alphas if (layer, float(a)) not in done]
        runs = iter(
            run_alphas(
                model,
                tokenizer,
                cases,
                single,
                missing,
                config,
                positions=positions,
                operator=operator,
                keep_norm=keep_norm,
                batched=batched,
            )
            if missing
            else []
        )
        norm = single.norms()[layer]
        for a in alphas:
            kept_point = done.get((layer, float(a)))
            points.append(kept_point or score_point("vector", layer, a, next(runs), baseline, norm))
    return SweepResult(
        baseline=base_point,
        points=points,
        case_ids=[c.id for c in cases],
        splits=sorted({c.split for c in cases}),
        positions=positions,
        operator=_operator_name(operator),
        vector_meta=dict(vector.meta),
        harness=dataclasses.asdict(config),
    )


def saved_sweep(
    path: str | os.PathLike[str],
    vector: SteeringVector,
    cases: Sequence[Case],
    layers: Sequence[int],
    alphas: Sequence[float],
    positions: str,
    config: HarnessConfig | None = None,
) -> SweepResult | None:
    """The sweep saved at `path` (`SweepResult.to_dict`) when it swept this vector as `sweep` would now: the same
    cases in the same order, the same positions and harness (`config`, `sweep`'s default when None), the vector's
    recipe (its meta) and its norm at every layer; its points are cut to the layers x alphas asked for. None
    otherwise, or when there is no file or none of its points is asked for. A grid widened since then leaves points
    missing: `sweep(kept=saved)` runs only those. A study cut in the middle of a multi-vector sweep redoes only the
    vectors (and points) it had not finished."""
    target = Path(path)
    if not target.is_file():
        return None
    saved = SweepResult.from_dict(json.loads(target.read_text(encoding="utf-8")))
    norms = vector.norms()
    wanted = {(layer, float(a)) for layer in layers for a in alphas}
    points = [p for p in saved.points if p.label == "vector" and (p.layer, float(p.alpha)) in wanted]
    same = (
        saved.case_ids == [c.id for c in cases]
        and saved.positions == positions
        and saved.harness == dataclasses.asdict(config or HarnessConfig(max_turns=1))
        and saved.vector_meta == json.loads(json.dumps(dict(vector.meta), default=str))
        and bool(points)
    )
    if not same:
        return None
    for point in points:
        if (
            point.norm is None
            or point.layer not in norms
            or not math.isclose(point.norm, norms[point.layer], rel_tol=1e-5)
        ):
            return None
    return dataclasses.replace(saved, points=points)


def symmetric_alphas(max_alpha: float, steps: int = 4) -> list[float]:
    """`steps` evenly spaced alphas on each side of 0, and 0: the dose-response grid in both signs."""
    if steps < 1 or max_alpha <= 0:
        raise ValueError("symmetric_alphas needs steps >= 1 and max_alpha > 0")
    side = [max_alpha * (i + 1) / steps for i in range(steps)]
    return [-a for a in reversed(side)] + [0.0] + side


def choose(
    result: SweepResult, min_call_tool: float | None = None, max_drop: float = MAX_CALL_TOOL_DROP
) -> SweepPoint | None:
    """The setting with the highest clarify accuracy among those whose call_tool accuracy is >= the floor; ties
    go to the smaller |alpha|, then the earlier layer. Floor: `min_call_tool`, else the baseline's call_tool
    accuracy minus `max_drop`. Only the vector's own points are candidates (not controls); None when none
    qualifies. The choice is made on `result`'s cases, which `sweep` made sure are not eval cases."""
    floor = min_call_tool
    if floor is None and result.baseline.call_tool_acc is not None:
        floor = result.baseline.call_tool_acc - max_drop
    candidates = [
        p
        for p in result.points
        if p.label == "vector" and (floor is None or p.call_tool_acc is None or p.call_tool_acc >= floor - 1e-12)
    ]
    if not candidates:
        return None
    return max(candidates, key=preference)


def preference(point: SweepPoint) -> tuple[float, float, int]:
    """How `choose` ranks the points that keep call_tool: more clarify, then the smaller |alpha|, then the earlier
    layer (also across sweeps of several vectors on the same cases)."""
    return -math.inf if point.clarify_acc is None else point.clarify_acc, -abs(point.alpha), -(point.layer or 0)


# --------------------------------------------------------------------------------------------------- controls


def random_control(vector: SteeringVector, layer: int, seed: int) -> SteeringVector:
    """A random Gaussian direction at `layer` with the same norm as the vector there."""
    target = vector[layer]
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(target.shape[0], generator=generator, dtype=torch.float32)
    scaled = direction / direction.norm() * target.float().norm()
    meta = {**vector.meta, "control": f"random:{seed}"}
    return SteeringVector({layer: scaled.to(target.dtype)}, hook=vector.hook, meta=meta)


def other_layers(n_layers: int, layer: int, count: int = 1, seed: int = 0) -> list[int]:
    """`count` layers other than `layer`, drawn at random (seeded) from the model's `n_layers`."""
    pool = [i for i in range(n_layers) if i != layer]
    return sorted(random.Random(seed).sample(pool, min(count, len(pool))))


def controls(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    vector: SteeringVector,
    layer: int,
    alpha: float,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    layers: Sequence[int] | None = None,
    config: HarnessConfig | None = None,
    positions: str = "all",
    operator: str | Operator = "add",
    baseline: Sequence[Verdict] | None = None,
    swept: SweepResult | None = None,
) -> SweepResult:
    """The vector at (layer, alpha) next to its controls: random directions of equal norm at `layer` (one per
    seed) and the vector moved to `layers` (default: one other layer at random).

    `baseline`: the unsteered verdicts of `cases` under `config`, when the caller has them (as for `sweep`).
    `swept`: the sweep this setting was chosen from; when it ran this vector on the same cases, positions, operator
    and harness and its baseline scores as this one does, its point at (layer, alpha) is the "vector" point here,
    not run again (greedy decoding gives the same verdicts, so only the time differs)."""

    refuse_held_out(cases, "steering controls")
    config = config or HarnessConfig(max_turns=1)
    baseline, base_point = _unsteered(model, tokenizer, cases, config, baseline)
    reusable = (
        swept is not None
        and _ran_as(swept, cases, positions, config, base_point)
        and swept.operator == _operator_name(operator)
        and swept.vector_meta == dict(vector.meta)
    )
    single = vector.only([layer])
    known = [
        p
        for p in (swept.points if swept is not None and reusable else [])
        if p.label == "vector" and p.layer == layer and math.isclose(p.alpha, alpha) and p.norm == single.norms()[layer]
    ]
    targets = (
        list(layers)
        if layers is not None
        else other_layers(len(decoder_layers(model)), layer, 1, seed=seeds[0] if seeds else 0)
    )
    settings: list[tuple[str, int, SteeringVector]] = [] if known else [("vector", layer, single)]
    settings += [(f"random:{s}", layer, random_control(vector, layer, s)) for s in seeds]
    settings += [(f"layer:{layer}->{t}", t, vector.at_layer(t, source=layer)) for t in targets]
    points = known[:1]
    for label, at, candidate in settings:
        (verdicts,) = run_alphas(
            model, tokenizer, cases, candidate, [alpha], config, positions=positions, operator=operator
        )
        points.append(score_point(label, at, alpha, verdicts, baseline, candidate.norms()[at]))
    return SweepResult(
        baseline=base_point,
        points=points,
        case_ids=[c.id for c in cases],
        splits=sorted({c.split for c in cases}),
        positions=positions,
        operator=_operator_name(operator),
        vector_meta=dict(vector.meta),
        harness=dataclasses.asdict(config),
    )
