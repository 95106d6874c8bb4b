"""`toolprior study CONFIG`: the whole study, cached and resumable; `toolprior demo` runs the default config."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolprior.commands.quiet import quiet_libraries
from toolprior.config import load_config, shipped_configs_dir
from toolprior.experiments.study_config import StudyConfig

DEMO_CONFIG = shipped_configs_dir() / "demo.yaml"


def _run(config_path: Path, overrides: list[str], report_only: bool = False) -> int:
    config = load_config(StudyConfig, config_path, overrides=overrides, check_files=True)
    if report_only:
        config.check_reportable()  # before the study's imports (torch, the trainers): a refusal comes in seconds
    quiet_libraries()  # after the config is accepted: quieting transformers imports it (and torch)
    # lazy: the study's stages load torch and the trainers (minutes on a busy machine); a bad config is refused first
    from toolprior.experiments.study import run_study

    report = run_study(config, report_only=report_only)
    run = Path(config.out_dir) / config.name
    print(f"\nwrote {run / 'report.json'} and {run / 'report.md'}")
    for name, m in report["methods"].items():
        per = m["per_action"]
        clarify = per.get("clarify", {}).get("acc")
        call = per.get("call_tool", {}).get("acc")
        print(f"  {name:22s} overall {m['overall']:.3f}  clarify {clarify}  call_tool {call}")
    return 0


def study(args: argparse.Namespace) -> int:
    overrides = list(args.set) + ([f"name={args.name}"] if args.name else [])
    return _run(args.config, overrides, report_only=args.report_only)


def demo(args: argparse.Namespace) -> int:
    out = args.out
    overrides = [f"name={out.name}", f"out_dir={out.parent}", *args.set]
    return _run(DEMO_CONFIG, overrides)
