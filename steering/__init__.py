"""Steering vectors: compute, save/load, apply during generation, ablate, condition, sweep."""

from steering.apply import Steering, steer, steering_factory
from steering.compute import AGGREGATORS, compute_from_cases, compute_vector, mean_diff, pca_paired, probe_weights
from steering.conditional import ConditionalSteering, fit_conditional
from steering.consistency import cosine_consistency
from steering.from_pairs import vector_from_pairs
from steering.guardrail import guardrail_evaluate
from steering.operators import OPERATORS
from steering.positions import POSITIONS
from steering.sweep import SweepPoint, SweepResult, choose, controls, random_control, sweep
from steering.vector import SteeringVector

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
