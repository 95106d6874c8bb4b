"""Crash safety: a real command (`python -m toolprior.cli ...`) on the tiny world (the embedded organism base, NF4, a
few dozen cases) is killed with SIGKILL at a chosen point, run again to completion, and its results are compared
with the same command run without a kill.

Kill points:
- SFT training, after its first checkpoint was written (the test polls for checkpoint-2/trainer_state.json, which
  the Trainer writes last, then kills): the adapter must come back byte-identical.
- SFT killed after its last checkpoint but before its adapter was written (the folder such a kill leaves, made by
  hand: a kill in that sub-second window cannot be aimed at from outside): it must finish without training on.
- A study inside its eval_sft stage, the SFT agent's held-out verdicts and their key written and its mine verdicts
  not (TOOLPRIOR_KILL_AFTER_WRITE, toolprior.atomic): the held-out evaluation is kept, not run again; verdicts
  byte-identical, report.json equal but for timings.
- An ablation while it writes its benchmark (eval.jsonl written, eval_novel.jsonl and benchmark.json not), then the
  rerun while it writes its results (results.json written, table.md not): results.json equal but for timings, the
  verdicts byte-identical.

The runs without a kill run in this process (the same code the command calls; one thread, as the commands get
through OMP_NUM_THREADS=1), which saves the start-up of a subprocess (15 s on a busy 2-core machine) per
comparison; so does the SFT rerun. The study and ablation reruns are the command again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from toolprior.atomic import KILL_AFTER_WRITE
from toolprior.config import load_config

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
SFT_CONFIG = "experiments/configs/sft_organism.yaml"
# Wall-clock fields: the only things a resumed run may report differently.
TIMINGS = frozenset({"train_s", "infer_s", "cpu_s", "infer_overhead", "seconds"})
# The tiny SFT every run here trains: 6 steps of 2 cases, a checkpoint and an evaluation every 2 steps. The recipe's
# NEFTune noise, LoRA dropout, length-grouped shuffling, cosine schedule and early stopping (loading the best
# checkpoint at the end) stay on: all of them draw on or carry state a resume has to restore.
TINY_SFT = [
    "lora.r=4",
    "training.max_steps=6",
    "training.save_steps=2",
    "training.eval_steps=2",
    "training.per_device_train_batch_size=2",
    "data.max_val_cases=4",
]
TINY_DATA = {"train_size": 24, "val_size": 8, "mine_size": 8, "eval_per_category": 1, "eval_novel_per_category": 1}


def _env(kill_after: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_AFTER_WRITE}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if kill_after:
        env[KILL_AFTER_WRITE] = kill_after
    return env


def _cli(*args: str, kill_after: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "toolprior.cli", *args]
    return subprocess.run(command, cwd=REPO, env=_env(kill_after), capture_output=True, text=True, timeout=600)


def _killed(*args: str, after: str) -> None:
    """Run the command until it has written the file `after`, where it kills itself with SIGKILL."""
    done = _cli(*args, kill_after=after)
    assert done.returncode == -signal.SIGKILL, (
        f"not killed after {after}: exit {done.returncode}\n{done.stderr[-3000:]}"
    )


def _finished(*args: str) -> None:
    done = _cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _same_files(a: Path, b: Path, pattern: str) -> list[str]:
    """The files matching `pattern` under `a`, checked byte-equal to those under `b`; returns their names."""
    names = sorted(str(p.relative_to(a)) for p in a.glob(pattern))
    assert names == sorted(str(p.relative_to(b)) for p in b.glob(pattern))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return names


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from toolprior.training.benchmark import BenchmarkConfig, write_benchmark

    folder = tmp_path_factory.mktemp("kill_resume") / "data"
    write_benchmark(folder, seed=3, config=BenchmarkConfig().replace(**TINY_DATA))
    return folder


def _sft_settings(data: Path) -> list[str]:
    return [f"data.dir={data}", *TINY_SFT]


def _train_in_process(out: Path, settings: list[str]) -> Any:
    from toolprior.training.run_configs import SFTRunConfig
    from toolprior.training.sft import train_sft

    return train_sft(load_config(SFTRunConfig, SFT_CONFIG, overrides=[*settings, f"output_dir={out}"]), progress=False)


def test_sft_killed_after_a_checkpoint_resumes_to_the_same_adapter(data, tmp_path):
    settings = _sft_settings(data)
    reference = _train_in_process(tmp_path / "reference", settings)
    out = tmp_path / "killed"
    args = ["train", "sft", SFT_CONFIG, "--output-dir", str(out), *(a for s in settings for a in ("--set", s))]
    log = tmp_path / "killed.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolprior.cli", *args],
            cwd=REPO,
            env=_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # generous: the deadline only stops a hung run; a busy 2-core machine took 240 s to reach checkpoint-4 once
    deadline = time.time() + 900
    while not (out / "checkpoint-2" / "trainer_state.json").exists():  # written last: the checkpoint is whole
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # a real kill: no handler runs, nothing is flushed
    proc.wait()
    assert not (out / "adapter").exists(), "the run had finished before the kill"

    again = _train_in_process(out, settings)  # what the command runs, without a second start-up
    assert again.resumed_from is not None and Path(again.resumed_from).name.startswith("checkpoint-")
    assert again.steps == reference.steps == 6
    assert again.best_eval_loss == reference.best_eval_loss
    # the trained weights, bit for bit (the Trainer restores the RNG, sampler, optimizer and scheduler state)
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == (
        reference.adapter_dir / "adapter_model.safetensors"
    ).read_bytes()
    final = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    expected = json.loads((reference.output_dir / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h.get("eval_loss") for h in final["log_history"]] == [h.get("eval_loss") for h in expected["log_history"]]


def test_sft_killed_before_its_adapter_was_written_finishes_without_training_further(data, tmp_path):
    """Killed after the last checkpoint, while it loaded the best checkpoint or wrote the adapter: a Trainer resumed
    from that checkpoint would train a seventh step (it checks for the end after a step, not before one)."""
    settings = _sft_settings(data)
    out = tmp_path / "run"
    reference = _train_in_process(out, settings)
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    # what the kill leaves: every checkpoint whole, the adapter cut short, no summary
    (out / "adapter" / "adapter_model.safetensors").write_bytes(adapter[: len(adapter) // 3])
    (out / "adapter" / "adapter_config.json").unlink()
    (out / "train_summary.json").unlink()

    again = _train_in_process(out, settings)
    assert again.resumed_from == str(out / "checkpoint-6")
    assert again.steps == reference.steps == 6 and not (out / "checkpoint-7").exists()
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert again.best_eval_loss == reference.best_eval_loss


def _study_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    config = {
        "name": name,
        "out_dir": str(tmp_path / "runs"),
        "base": "organism",
        "quantize": "nf4",
        "sft_config": str(REPO / SFT_CONFIG),
        "sft_set": TINY_SFT,
        "data": {"seed": 7, **TINY_DATA},
        "eval": {"max_new_tokens": 32, "batch_size": 16, "max_turns": 1},
        "probe": {"enabled": False},
        "methods": ["sft", "guardrail"],
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@pytest.mark.slow
def test_study_killed_inside_an_eval_stage_resumes_to_the_same_report(tmp_path):
    from toolprior.experiments.study import run_study
    from toolprior.experiments.study_config import StudyConfig

    reference = _study_config(tmp_path, "reference")
    run_study(load_config(StudyConfig, reference, check_files=True), progress=False)
    config = _study_config(tmp_path, "killed")
    # eval_sft writes the held-out verdicts and their key, then mine's, then its marker: killed between the two
    _killed("study", str(config), after="verdicts_cache/sft.key.json")
    run = tmp_path / "runs" / "killed"
    assert (run / "stages" / "sft.json").is_file() and not (run / "stages" / "eval_sft.json").exists()
    assert not (run / "verdicts_cache" / "sft_mine.jsonl").exists()
    held_out = (run / "verdicts_cache" / "sft.jsonl").stat().st_mtime_ns
    _finished("study", str(config))
    # the resumed stage keeps the held-out evaluation it had finished and runs only mine's
    assert (run / "verdicts_cache" / "sft.jsonl").stat().st_mtime_ns == held_out
    assert json.loads((run / "stages" / "eval_sft.json").read_text())["held_out"]["kept"] is True

    ref = tmp_path / "runs" / "reference"
    assert _same_files(run, ref, "verdicts/*.jsonl") == ["verdicts/guardrail.jsonl", "verdicts/sft.jsonl"]
    assert _same_files(run, ref, "verdicts_cache/*.jsonl")
    assert (run / "sft" / "adapter" / "adapter_model.safetensors").read_bytes() == (
        ref / "sft" / "adapter" / "adapter_model.safetensors"
    ).read_bytes()
    report, expected = (json.loads((r / "report.json").read_text()) for r in (run, ref))
    assert _without_timings(report) == _without_timings(expected)


def _ablation_config(tmp_path: Path) -> Path:
    path = tmp_path / "ablation.yaml"
    config = {
        "name": "killed",
        "out_dir": str(tmp_path / "ablate"),
        "base": "organism",
        "sft_config": str(REPO / SFT_CONFIG),
        "sft_set": TINY_SFT,
        "arms": {"recipe": [], "no_neftune": ["training.neftune_noise_alpha=null"]},
        "seeds": [0],
        "split": "eval_novel",  # written after eval.jsonl: a benchmark cut short there lacks it
        "data": {"seed": 7, **TINY_DATA},
        "eval": {"max_new_tokens": 32, "batch_size": 16, "max_turns": 1},
    }
    path.write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_ablation_killed_while_writing_its_benchmark_then_its_results_resumes_to_the_same_results(tmp_path):
    from toolprior.experiments.ablate import run_ablation
    from toolprior.experiments.ablate_config import AblationConfig

    config = _ablation_config(tmp_path)
    reference_dir = tmp_path / "reference"
    expected = run_ablation(
        load_config(AblationConfig, config, overrides=[f"out_dir={reference_dir}"], check_files=True), progress=False
    )

    _killed("ablate", str(config), after="eval.jsonl")
    root = tmp_path / "ablate"
    (data,) = (root / "data").iterdir()
    assert (data / "eval.jsonl").is_file() and not (data / "benchmark.json").exists()
    _killed("ablate", str(config), after="killed/results.json")
    assert not (root / "killed" / "table.md").exists()
    _finished("ablate", str(config))

    results = json.loads((root / "killed" / "results.json").read_text())
    assert _without_timings(results["arms"]) == _without_timings(expected["arms"])
    assert results["cases"] == expected["cases"] and results["split"] == "eval_novel"
    units = _same_files(root / "units", reference_dir / "units", "*/verdicts.jsonl")
    assert len(units) == 2
    _same_files(root / "data", reference_dir / "data", "*/*.jsonl")
    table = (root / "killed" / "table.md").read_text()
    assert "| no_neftune |" in table and "Split `eval_novel`" in table


def test_the_kill_hook_fires_only_on_the_named_file(tmp_path):
    """TOOLPRIOR_KILL_AFTER_WRITE kills after the named file is in place, and nothing else."""
    script = (
        "import sys; from toolprior.atomic import atomic_write_text as w; "
        "w(sys.argv[1] + '/a/one.txt', '1'); w(sys.argv[1] + '/b/two.txt', '2'); w(sys.argv[1] + '/c/two.txt', '3')"
    )
    for after, killed, written in (("b/two.txt", True, ["a/one.txt", "b/two.txt"]), ("zzz", False, None)):
        shutil.rmtree(tmp_path / "w", ignore_errors=True)
        (tmp_path / "w").mkdir()
        env = _env(after)
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "w")], cwd=REPO, env=env, timeout=60)
        assert (done.returncode == -signal.SIGKILL) == killed
        found = sorted(str(p.relative_to(tmp_path / "w")) for p in (tmp_path / "w").rglob("*.txt"))
        assert found == (written or ["a/one.txt", "b/two.txt", "c/two.txt"])


def test_a_run_that_had_ended_is_finished_not_trained_further(tmp_path):
    """stopped_at: a checkpoint written at the end of its run (the last step, or early stopping) is final for the
    same schedule; a rerun asking for more steps or epochs trains on from it."""
    from types import SimpleNamespace

    from toolprior.training.checkpoints import stopped_at

    def checkpoint(step: int, planned: int, stop: bool, epochs: float = 1.0) -> Path:
        folder = tmp_path / f"checkpoint-{step}-{planned}-{stop}"
        folder.mkdir(exist_ok=True)
        control = {"args": {"should_training_stop": stop, "should_save": True}, "attributes": {}}
        state = {"global_step": step, "max_steps": planned, "num_train_epochs": epochs}
        state["stateful_callbacks"] = {"TrainerControl": control}
        (folder / "trainer_state.json").write_text(json.dumps(state))
        return folder

    steps = SimpleNamespace(max_steps=6, num_train_epochs=3.0)
    epochs = SimpleNamespace(max_steps=-1, num_train_epochs=1.0)
    assert stopped_at(None, steps) is None
    assert stopped_at(checkpoint(4, 6, stop=False), steps) is None  # killed mid-run: resume
    assert stopped_at(checkpoint(6, 6, stop=True), steps) == 6  # killed after the end: finish
    assert stopped_at(checkpoint(6, 6, stop=True), SimpleNamespace(max_steps=8, num_train_epochs=3.0)) is None
    assert stopped_at(checkpoint(2, 6, stop=True), SimpleNamespace(max_steps=8, num_train_epochs=3.0)) == 2  # early
    assert stopped_at(checkpoint(13, 13, stop=True), epochs) == 13
    assert stopped_at(checkpoint(13, 13, stop=True), SimpleNamespace(max_steps=-1, num_train_epochs=2.0)) is None
