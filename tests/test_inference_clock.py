"""The study's cost column: CPU seconds do not count time the process spends stopped or waiting, wall seconds do;
the overhead against sft comes from CPU seconds when both evaluations have them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from toolprior.config import load_config
from toolprior.experiments.inference_clock import inference_clock
from toolprior.experiments.study_config import StudyConfig
from toolprior.experiments.study_report import method_costs
from toolprior.experiments.study_run import StudyRun

CHILD = """
import json, pathlib, sys, time
from toolprior.experiments.inference_clock import inference_clock
resumed = pathlib.Path(sys.argv[1])
with inference_clock() as clock:
    print("started", flush=True)
    start = time.process_time()
    # busy until it has a CPU second and the parent has stopped and resumed it, however late the parent is
    while time.process_time() - start < 1.0 or not resumed.exists():
        pass
print(json.dumps(clock))
"""


def test_a_stopped_process_keeps_its_cpu_seconds_but_not_its_wall_seconds(tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(resumed)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    os.kill(child.pid, signal.SIGSTOP)  # what the sessions do to a background study while tests run
    time.sleep(2.0)
    resumed.touch()
    os.kill(child.pid, signal.SIGCONT)
    out, _ = child.communicate(timeout=60)
    clock = json.loads(out)
    assert clock["cpu_s"] >= 1.0
    assert clock["infer_s"] - clock["cpu_s"] >= 1.8  # the pause is wall time, not CPU time


def test_a_sleeping_block_has_wall_seconds_and_almost_no_cpu_seconds() -> None:
    with inference_clock() as clock:
        time.sleep(0.3)
    assert clock["infer_s"] >= 0.3 and clock["cpu_s"] < 0.1


def _stage(run: Path, name: str, record: dict[str, Any]) -> None:
    (run / "stages").mkdir(parents=True, exist_ok=True)
    (run / "stages" / f"{name}.json").write_text(json.dumps(record))


def test_the_overhead_comes_from_cpu_seconds_where_both_have_them(tmp_path: Path) -> None:
    config = load_config(StudyConfig, "experiments/configs/study_tiny.yaml", overrides=[f"out_dir={tmp_path}"])
    study = StudyRun(config, progress=False)
    _stage(study.run, "eval_sft", {"held_out": {"infer_s": 100.0, "cpu_s": 180.0}})
    _stage(study.run, "eval_steering", {
        "steering": {"infer_s": 400.0, "cpu_s": 198.0},  # paused for 300 s: wall says 4x, CPU says 1.1x
        "steering_random": {"infer_s": 120.0},  # kept from a run before CPU seconds were recorded
    })  # fmt: skip
    costs = method_costs(study)
    assert costs["steering"]["infer_overhead"] == 1.1 and costs["steering"]["overhead_from"] == "cpu"
    assert costs["steering_random"]["infer_overhead"] == 1.2 and costs["steering_random"]["overhead_from"] == "wall"
    assert costs["sft"]["infer_overhead"] == 1.0
    assert "simpo" not in costs  # never evaluated: no cost row
