"""`toolprior eval` under `accelerate launch` with two CPU processes: each scores a shard, the verdicts gathered
in case order equal a single process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

pytestmark = pytest.mark.slow


def _verdicts(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "verdicts" / "sft.jsonl").read_text().splitlines()]


def test_eval_sharded_over_two_processes_matches_one(tmp_path):
    write_benchmark(tmp_path / "data", seed=4, config=BenchmarkConfig().replace(train_size=5, eval_per_category=1))
    args = ["-m", "toolprior.cli", "eval", "--model", "organism", "--cases", str(tmp_path / "data" / "eval.jsonl")]
    args += ["--limit", "7", "--max-new-tokens", "40", "--batch-size", "2"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    accelerate = Path(sys.executable).with_name("accelerate")
    launch = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29541"]
    two = subprocess.run(
        [*launch, *args, "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=600
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _verdicts(tmp_path / "one"), _verdicts(tmp_path / "two")
    assert [v["id"] for v in a] == [v["id"] for v in b] and len(a) == 7
    assert [(v["predicted"], v["output"]) for v in a] == [(v["predicted"], v["output"]) for v in b]
    assert json.loads((tmp_path / "two" / "report.json").read_text())["eval"]["n"] == 7
