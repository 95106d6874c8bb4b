"""The study's cost column: CPU seconds do not count time the process spends stopped or waiting, wall seconds do;
the overhead against sft comes from CPU seconds when both evaluations have them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from toolprior.config import load_config
from toolprior.experiments.inference_clock import inference_clock
from toolprior.experiments.study_config import StudyConfig
from toolprior.experiments.study_report import _costs
from toolprior.experiments.study_run import StudyRun

CHILD = """
import json, sys, time
from toolprior.experiments.inference_clock import inference_clock
with inference_clock() as clock:
    print("started", flush=True)
    start = time.process_time()
    while time.process_time() - start < 1.0:  # one CPU second of work, however long it takes on the wall
        pass
print(json.dumps(clock))
"""


def test_a_stopped_process_keeps_its_cpu_seconds_but_not_its_wall_seconds():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    os.kill(child.pid, signal.SIGSTOP)  # what the sessions do to a background study while tests run
    time.sleep(2.0)
    os.kill(child.pid, signal.SIGCONT)
    out, _ = child.communicate(timeout=60)
    clock = json.loads(out)
    assert clock["infer_s"] >= 1.0 + 2.0  # its CPU second plus the pause
    assert 1.0 <= clock["cpu_s"] < 1.5  # the pause is not in it


def test_a_sleeping_block_has_wall_seconds_and_almost_no_cpu_seconds():
    with inference_clock() as clock:
        time.sleep(0.3)
    assert clock["infer_s"] >= 0.3 and clock["cpu_s"] < 0.1


def _stage(run, name, record):
    (run / "stages").mkdir(parents=True, exist_ok=True)
    (run / "stages" / f"{name}.json").write_text(json.dumps(record))


def test_the_overhead_comes_from_cpu_seconds_where_both_have_them(tmp_path):
    config = load_config(StudyConfig, "experiments/configs/study_tiny.yaml", overrides=[f"out_dir={tmp_path}"])
    study = StudyRun(config, progress=False)
    _stage(study.run, "eval_sft", {"held_out": {"infer_s": 100.0, "cpu_s": 180.0}})
    _stage(study.run, "eval_steering", {
        "steering": {"infer_s": 400.0, "cpu_s": 198.0},  # paused for 300 s: wall says 4x, CPU says 1.1x
        "steering_random": {"infer_s": 120.0},  # kept from a run before CPU seconds were recorded
    })  # fmt: skip
    costs = _costs(study)
    assert costs["steering"]["infer_overhead"] == 1.1 and costs["steering"]["overhead_from"] == "cpu"
    assert costs["steering_random"]["infer_overhead"] == 1.2 and costs["steering_random"]["overhead_from"] == "wall"
    assert costs["sft"]["infer_overhead"] == 1.0
    assert "simpo" not in costs  # never evaluated: no cost row
