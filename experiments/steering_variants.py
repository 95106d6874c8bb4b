"""The steering variants a study searches on mine: how the vector is made (method, source, the position its
activations are read at) and where it is applied while the agent writes, one string each in a config:
"method/source/position/apply", e.g. "mean_diff/classes/decision/from_decision" (the class means at the decision
point, added from the decision point on) or "pca_paired/twins/prompt_end/generated" (the first principal component
of twin differences at the prompt's end, added to every generated token, the think included)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolprior.steering_names import METHODS, POSITIONS, SOURCES

if TYPE_CHECKING:
    from toolprior.steering.vector import SteeringVector

# where activations are read (probes.positions.POSITION_RULES names the same two for vectors)
READ_POSITIONS: tuple[str, ...] = ("decision", "prompt_end")


@dataclass(frozen=True)
class SteeringVariant:
    """One way to make and apply a clarify-minus-call_tool vector."""

    method: str
    source: str
    position: str
    apply: str

    @property
    def name(self) -> str:
        """A file-safe name: the four parts joined by "-"."""
        return f"{self.method}-{self.source}-{self.position}-{self.apply}"

    def to_dict(self) -> dict[str, str]:
        return {"method": self.method, "source": self.source, "position": self.position, "apply": self.apply}


def parse_variant(text: str) -> SteeringVariant:
    """ "method/source/position/apply" -> SteeringVariant; ValueError saying which part is wrong."""
    parts = text.split("/")
    if len(parts) != 4:
        raise ValueError(f"expected method/source/position/apply, got {text!r}")
    method, source, position, apply = (p.strip() for p in parts)
    for what, value, allowed in (
        ("method", method, METHODS),
        ("source", source, SOURCES),
        ("position", position, READ_POSITIONS),
        ("apply", apply, POSITIONS),
    ):
        if value not in allowed:
            raise ValueError(f"{what} {value!r} in {text!r}: expected one of {', '.join(allowed)}")
    if method == "pca_paired" and source != "twins":
        raise ValueError(f"{text!r}: pca_paired needs source twins (it takes the PCA of paired differences)")
    return SteeringVariant(method, source, position, apply)


def variant_rule(value: Any) -> str | None:
    """The config check of one variant string: None when it parses, else why not."""
    if not isinstance(value, str):
        return f"expected a string method/source/position/apply, got {type(value).__name__}"
    try:
        parse_variant(value)
    except ValueError as err:
        return str(err)
    return None


def variant_row(variant: SteeringVariant, result: Any, best: Any) -> dict[str, Any]:
    """A variant's line in the sweep summary: the layers and alphas swept, its best point on mine (None when none
    kept call_tool) and the point with the most clarify whatever it cost."""
    points = [p for p in result.points if p.label == "vector"]
    most = max(points, key=lambda p: -1.0 if p.clarify_acc is None else p.clarify_acc)

    def brief(p: Any) -> dict[str, Any]:
        return {"layer": p.layer, "alpha": p.alpha, "clarify_acc": p.clarify_acc, "call_tool_acc": p.call_tool_acc,
                "moved_wrong": p.moved_wrong, "moved_right": p.moved_right}  # fmt: skip

    return {
        "variant": variant.name,
        "layers": result.layers,
        "alphas": sorted({p.alpha for p in points}),
        "chosen": None if best is None else brief(best),
        "most_clarify": brief(most),
    }


def rescaled(vector: SteeringVector, norms: dict[int, float]) -> SteeringVector:
    """`vector` with each layer's direction kept and its length set to `norms[layer]` (the study's
    `steering.variant_scale`). A vector already at those lengths (to 1e-6) comes back as it is, bit for bit, so its
    saved sweeps stay reusable."""
    # lazy: the study's config check imports this module, and the steering package loads torch (seconds)
    from toolprior.steering.vector import SteeringVector

    own = vector.norms()
    if all(math.isclose(own[layer], norms[layer], rel_tol=1e-6) for layer in vector.layers):
        return vector
    scaled = {
        layer: (v * (norms[layer] / own[layer])).to(v.dtype) if own[layer] > 0 else v
        for layer, v in vector.layer_vectors.items()
    }
    meta = {**vector.meta, "scaled_to": "the norm of the class-mean difference at the decision point"}
    return SteeringVector(scaled, hook=vector.hook, meta=meta)
