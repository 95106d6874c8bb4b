"""`toolprior probe CONFIG`: where the call-tool prior lives (probes.experiment)."""

from __future__ import annotations

import argparse
import json

from toolprior.config import load_config
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.probes.experiment_run import run_probe_experiment


def probe(args: argparse.Namespace) -> int:
    overrides = list(args.set)
    if args.out:
        overrides.append(f"output_dir={args.out}")
    config = load_config(ProbeExperimentConfig, args.config, overrides=overrides, check_files=True)
    summary = run_probe_experiment(config, progress=not args.quiet)
    block = summary.get("probe")
    if block is not None:
        print(f"probe ({block['task']}, {block['method']} at {block['position']}): best layer {block['best_layer']}")
        for row in block["layers"]:
            print(json.dumps({k: row.get(k) for k in ("layer", "acc", "control_acc", "selectivity")}))
    print(f"wrote {config.output_dir}")
    return 0
