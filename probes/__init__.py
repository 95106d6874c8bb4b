"""Activation capture, per-layer probes with control tasks, the logit lens, and activation patching on twins."""

from probes.capture import Activations, capture, capture_cases, case_texts, recording
from probes.controls import permuted_fold_labels, template_control_labels
from probes.experiment import ProbeExperimentConfig, run_probe_experiment
from probes.fit import (
    LayerCurve,
    LayerRow,
    LinearProbe,
    ProbeWeights,
    calibrate_threshold,
    cross_validate,
    fit_layer_curve,
    fit_probe,
    grouped_folds,
)
from probes.hook_points import HookPoint, all_hook_names, all_resid_post, hook_name, parse_hook_name, resolve
from probes.logit_lens import LensResult, final_norm, logit_lens, unembed
from probes.patching import (
    Patch,
    PatchingResult,
    TwinPair,
    attribution_patching,
    compare_patching,
    patch_heads,
    patch_metric,
    patch_resid,
    twin_pairs,
)
from probes.positions import POSITION_RULES, MissingThinkError, compute_positions
from probes.report import (
    plot_head_map,
    plot_layer_curve,
    plot_logit_lens,
    plot_patching_comparison,
    plot_patching_map,
    probe_block,
)
from probes.store import ActivationStore, load_activations

__all__ = [
    "POSITION_RULES",
    "ActivationStore",
    "Activations",
    "HookPoint",
    "LayerCurve",
    "LayerRow",
    "LensResult",
    "LinearProbe",
    "MissingThinkError",
    "Patch",
    "PatchingResult",
    "ProbeExperimentConfig",
    "ProbeWeights",
    "TwinPair",
    "all_hook_names",
    "all_resid_post",
    "attribution_patching",
    "calibrate_threshold",
    "capture",
    "capture_cases",
    "case_texts",
    "compare_patching",
    "compute_positions",
    "cross_validate",
    "final_norm",
    "fit_layer_curve",
    "fit_probe",
    "grouped_folds",
    "hook_name",
    "load_activations",
    "logit_lens",
    "parse_hook_name",
    "patch_heads",
    "patch_metric",
    "patch_resid",
    "permuted_fold_labels",
    "plot_head_map",
    "plot_layer_curve",
    "plot_logit_lens",
    "plot_patching_comparison",
    "plot_patching_map",
    "probe_block",
    "recording",
    "resolve",
    "run_probe_experiment",
    "template_control_labels",
    "twin_pairs",
    "unembed",
]
