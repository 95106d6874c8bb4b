"""`toolprior probe CONFIG`: where the call-tool prior lives (probes.experiment)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    probe = subparsers.add_parser(
        "probe",
        help="probe the agent's activations: layer curves, logit lens, activation patching",
        description=(
            "Captures the agent's activations on the TRAIN split (held-out splits are refused), fits per-layer probes "
            "cross-validated by surface template with control tasks and a base-model baseline, reads the logit lens "
            "at the decision point, and patches activations between twin cases (exact and attribution patching). "
            "Writes probe_block.json (the probe block of report.json), summary.json, curves/, probes/ and plots/."
        ),
    )
    probe.add_argument("config", help="YAML file filling probes.experiment.ProbeExperimentConfig")
    probe.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. patching.k=8 (repeatable)"
    )
    probe.add_argument("--out", default=None, help="output folder (overrides output_dir)")
    probe.add_argument("--quiet", action="store_true", help="no progress output")
    probe.set_defaults(run=("probe", "probe"))
