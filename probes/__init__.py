"""Activation capture, per-layer probes with control tasks, the logit lens, and activation patching on twins."""

from probes.activations import Activations
from probes.attribution import attribution_patching
from probes.backends.hooks_backend import recording
from probes.capture import capture, capture_cases, case_texts
from probes.controls import permuted_fold_labels, template_control_labels
from probes.cross_validation import cross_validate
from probes.experiment import ProbeExperimentConfig
from probes.experiment_run import run_probe_experiment
from probes.fit import calibrate_threshold, fit_probe
from probes.folds import grouped_folds
from probes.hook_points import HookPoint, all_hook_names, all_resid_post, hook_name, parse_hook_name, resolve
from probes.layer_curve import LayerCurve, LayerRow, fit_layer_curve
from probes.linear_probe import LinearProbe, ProbeWeights
from probes.logit_lens import LensResult, final_norm, logit_lens, unembed
from probes.patch_engine import Patch
from probes.patching import patch_heads, patch_metric, patch_resid
from probes.patching_compare import compare_patching
from probes.patching_result import PatchingResult
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
from probes.twins import TwinPair, twin_pairs

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
