"""Steering vectors: compute, save/load, apply during generation, ablate, condition, sweep."""

from toolprior.steering.apply import Steering, steer, steering_factory
from toolprior.steering.compute import (
    AGGREGATORS,
    compute_from_cases,
    compute_vector,
    mean_diff,
    pca_paired,
    probe_weights,
)
from toolprior.steering.conditional import ConditionalSteering, fit_conditional
from toolprior.steering.consistency import cosine_consistency
from toolprior.steering.from_pairs import vector_from_pairs
from toolprior.steering.guardrail import guardrail_evaluate
from toolprior.steering.operators import OPERATORS
from toolprior.steering.positions import POSITIONS
from toolprior.steering.sweep import SweepPoint, SweepResult, choose, controls, random_control, sweep
from toolprior.steering.vector import SteeringVector

__all__ = [
    "AGGREGATORS",
    "OPERATORS",
    "POSITIONS",
    "ConditionalSteering",
    "Steering",
    "SteeringVector",
    "SweepPoint",
    "SweepResult",
    "choose",
    "compute_from_cases",
    "compute_vector",
    "controls",
    "cosine_consistency",
    "fit_conditional",
    "guardrail_evaluate",
    "mean_diff",
    "pca_paired",
    "probe_weights",
    "random_control",
    "steer",
    "steering_factory",
    "sweep",
    "vector_from_pairs",
]
