"""`toolprior study CONFIG`: the whole study, cached and resumable; `toolprior demo` runs the default config."""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    study = subparsers.add_parser("study", help="run a whole study from a YAML config into runs/<name>/ (resumable)")
    study.add_argument("config", type=Path, help="YAML file filling experiments.study_config.StudyConfig")
    study.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. eval.batch_size=64"
    )
    study.add_argument("--name", default=None, help="run name (folder under out_dir)")
    study.set_defaults(func=_study)


def _run(config_path: Path, overrides: list[str]) -> int:
    from experiments.study import run_study
    from experiments.study_config import StudyConfig
    from toolprior.commands.train import _quiet_libraries
    from toolprior.config import load_config

    _quiet_libraries()
    config = load_config(StudyConfig, config_path, overrides=overrides, check_files=True)
    report = run_study(config)
    run = Path(config.out_dir) / config.name
    print(f"\nwrote {run / 'report.json'} and {run / 'report.md'}")
    for name, m in report["methods"].items():
        per = m["per_action"]
        clarify = per.get("clarify", {}).get("acc")
        call = per.get("call_tool", {}).get("acc")
        print(f"  {name:22s} overall {m['overall']:.3f}  clarify {clarify}  call_tool {call}")
    return 0


def _study(args: argparse.Namespace) -> int:
    overrides = list(args.set) + ([f"name={args.name}"] if args.name else [])
    return _run(args.config, overrides)


def _demo(args: argparse.Namespace) -> int:
    out = args.out
    overrides = [f"name={out.name}", f"out_dir={out.parent}", *args.set]
    return _run(DEMO_CONFIG, overrides)
