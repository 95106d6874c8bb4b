"""Activation capture, per-layer probes with control tasks, the logit lens, and activation patching on twins."""

from toolprior.probes.activations import Activations
from toolprior.probes.attribution import attribution_patching
from toolprior.probes.backends.hooks_backend import recording
from toolprior.probes.capture import capture, capture_cases, case_texts
from toolprior.probes.controls import permuted_fold_labels, template_control_labels
from toolprior.probes.cross_validation import cross_validate
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.probes.experiment_run import run_probe_experiment
from toolprior.probes.fit import calibrate_threshold, fit_probe
from toolprior.probes.folds import grouped_folds
from toolprior.probes.hook_points import HookPoint, all_hook_names, all_resid_post, hook_name, parse_hook_name, resolve
from toolprior.probes.layer_curve import LayerCurve, LayerRow, fit_layer_curve
from toolprior.probes.linear_probe import LinearProbe, ProbeWeights
from toolprior.probes.logit_lens import LensResult, final_norm, logit_lens, unembed
from toolprior.probes.patch_engine import Patch
from toolprior.probes.patching import patch_heads, patch_metric, patch_resid
from toolprior.probes.patching_compare import compare_patching
from toolprior.probes.patching_result import PatchingResult
from toolprior.probes.positions import POSITION_RULES, MissingThinkError, compute_positions
from toolprior.probes.report import (
    plot_head_map,
    plot_layer_curve,
    plot_logit_lens,
    plot_patching_comparison,
    plot_patching_map,
    probe_block,
)
from toolprior.probes.store import ActivationStore, load_activations
from toolprior.probes.twins import TwinPair, twin_pairs

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
