"""Whole-config validation up front (issue 16, part 1): every config the commands read is checked completely when it
is loaded, before anything runs. Each bad value is one `error: file:line: field: message` line on stderr, exit 2,
and nothing is written to the run folder; paths resolve against the config's folder and the shipped defaults
against the installed package, never the current directory."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolprior.cli import main
from toolprior.config import check, load_config, shipped_configs_dir
from toolprior.errors import InputError
from toolprior.experiments.ablate_config import AblationConfig
from toolprior.experiments.study_config import StudyConfig
from toolprior.probes.experiment import ProbeExperimentConfig
from toolprior.training import AdvSFTRunConfig, DPORunConfig, SimPORunConfig
from toolprior.training.run_configs import SFTRunConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A folder holding the inputs the valid configs below point at (relative to it), and nothing else."""
    (tmp_path / "data").mkdir()
    for name in ("data/train.jsonl", "data/val.jsonl", "pairs.jsonl", "cases.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "adapter").mkdir()
    return tmp_path


# One valid config per command: each case below changes one setting and expects one line naming it.
VALID: dict[str, str] = {
    "study": "name: s\nout_dir: out\nsteering:\n  alphas: [0.5, 1.0]\n  layers: [1, 2]\nsft_set: [lora.r=8]\n",
    "ablate": "name: a\nout_dir: out\narms:\n  recipe: []\n  small: [lora.r=8]\nseeds: [0]\nsteering:\n  layers: [2]\n",
    "train sft": "output_dir: out\nlora:\n  r: 8\n  dropout: 0.1\ndata:\n  dir: data\ntraining:\n  learning_rate: 1.0e-3\n",
    "train simpo": "output_dir: out\nmodel:\n  adapter: adapter\ndata:\n  pairs_file: pairs.jsonl\npreference:\n  beta: 1.0\n",
    "train dpo": "output_dir: out\nmodel:\n  adapter: adapter\ndata:\n  pairs_file: pairs.jsonl\npreference:\n  beta: 0.1\n",
    "train adv-sft": "output_dir: out\nmodel:\n  adapter: adapter\ndata:\n  pairs_file: pairs.jsonl\n",
    "probe": "output_dir: out\ndata:\n  cases: [cases.jsonl]\n  splits: [train]\ncapture:\n  positions: [decision]\n",
}

# (command, text replaced in VALID, its replacement, the field named, the line named, a word of the message)
BAD: list[tuple[str, str, str, str, int, str]] = [
    # study: types (list elements), ranges, known sets, files, sub-configs, held-out splits, layers in the model
    ("study", "alphas: [0.5, 1.0]", "alphas: [1, 'x']", "steering.alphas[1]", 4, "expected float"),
    ("study", "alphas: [0.5, 1.0]", "alphas: [.inf]", "steering.alphas[0]", 4, "finite"),
    ("study", "out_dir: out\n", "out_dir: out\neval: {batch_size: 0}\n", "eval.batch_size", 3, ">= 1"),
    ("study", "out_dir: out\n", "out_dir: out\nquantize: nf8\n", "quantize", 3, "none, nf4"),
    ("study", "alphas: [0.5, 1.0]", "apply_positions: everywhere", "steering.apply_positions", 4, "from_decision"),
    ("study", "alphas: [0.5, 1.0]", "method: magic", "steering.method", 4, "mean_diff"),
    ("study", "alphas: [0.5, 1.0]", "source_split: eval", "steering.source_split", 4, "held out"),
    ("study", "alphas: [0.5, 1.0]", "position: middle", "steering.position", 4, "decision"),
    ("study", "layers: [1, 2]", "layers: [1, 6]", "steering.layers[1]", 5, "outside the model"),
    ("study", "name: s\n", "name: s\nsft_config: nowhere.yaml\n", "sft_config", 2, "not found"),
    ("study", "name: s\n", "name: s\nmethods: [sft, magic]\n", "methods[1]", 2, "guardrail"),
    ("study", "sft_set: [lora.r=8]", "sft_set: [lora.r=0]", "sft_set[0]", 6, "lora.r: must be > 0"),
    ("study", "sft_set: [lora.r=8]", "sft_set: [lora.rank=8]", "sft_set[0]", 6, "lora.rank: unknown setting"),
    ("study", "name: s\n", "name: s\nsimpo_set: [preference.beta=0]\n", "simpo_set[0]", 2, "preference.beta"),
    ("study", "name: s\n", "name: s\ndata: {train_mix: call_tool=1}\n", "data.train_mix", 2, "missing"),
    # ablate: arms, their benchmark settings, the grid, seeds, splits
    ("ablate", "small: [lora.r=8]", "small: [lora.r=-1]", "arms.small[0]", 5, "lora.r: must be > 0"),
    ("ablate", "small: [lora.r=8]", "small: [bench.nonsense=1]", "arms.small[0]", 5, "unknown benchmark setting"),
    ("ablate", "small: [lora.r=8]", "small: [bench.train_size=0]", "arms.small[0]", 5, "train_size: must be >= 1"),
    ("ablate", "seeds: [0]", "seeds: [0, x]", "seeds[1]", 6, "expected int"),
    ("ablate", "seeds: [0]", "seeds: [0]\ngrid:\n  lora.alpha: [0]", "grid.lora.alpha", 8, "lora.alpha"),
    ("ablate", "seeds: [0]", "seeds: [0]\nsplit: test", "split", 7, "eval_novel"),
    ("ablate", "layers: [2]", "layers: [2]\n  split: eval", "steering.split", 9, "held out"),
    ("ablate", "layers: [2]", "layers: [-2]", "steering.layers[0]", 8, ">= 0"),
    # train sft: LoRA, training, model, data files
    ("train sft", "r: 8", "r: 0", "lora.r", 3, "> 0"),
    ("train sft", "dropout: 0.1", "dropout: 1.0", "lora.dropout", 4, "< 1"),
    ("train sft", "learning_rate: 1.0e-3", "learning_rate: 0", "training.learning_rate", 8, "> 0"),
    ("train sft", "learning_rate: 1.0e-3", "learning_rate: fast", "training.learning_rate", 8, "expected float"),
    ("train sft", "r: 8", "r: 8\n  adapter_dtype: half", "lora.adapter_dtype", 4, "float32, base"),
    ("train sft", "output_dir: out\n", "output_dir: out\nmodel: {dtype: float8}\n", "model.dtype", 2, "bfloat16"),
    ("train sft", "output_dir: out\n", "output_dir: out\nmodel: {quantize: int4}\n", "model.quantize", 2, "nf4"),
    ("train sft", "dir: data", "dir: nowhere", "data.dir", 6, "not found"),
    ("train sft", "dir: data", "dir: data\n  train_file: missing.jsonl", "data.train_file", 7, "not found"),
    ("train sft", "learning_rate: 1.0e-3", "max_steps: 0", "training.max_steps", 8, "-1"),
    # pair training: preference settings, pairs and adapter files
    ("train simpo", "beta: 1.0", "beta: 0", "preference.beta", 7, "> 0"),
    (
        "train simpo",
        "pairs_file: pairs.jsonl",
        "pairs_file: pairs.jsonl\n  focus_share: 0.76",
        "data.focus_action",
        4,
        "together",
    ),
    (
        "train simpo",
        "pairs_file: pairs.jsonl",
        "pairs_file: pairs.jsonl\n  focus_action: ask",
        "data.focus_action",
        6,
        "clarify",
    ),
    ("train simpo", "beta: 1.0", "beta: 1.0\n  cpo_alpha: -1", "preference.cpo_alpha", 8, ">= 0"),
    ("train simpo", "pairs_file: pairs.jsonl", "pairs_file: missing.jsonl", "data.pairs_file", 5, "not found"),
    ("train dpo", "adapter: adapter", "adapter: missing", "model.adapter", 3, "not found"),
    ("train dpo", "beta: 0.1", "beta: -1", "preference.beta", 7, "> 0"),
    (
        "train adv-sft",
        "pairs_file: pairs.jsonl",
        "pairs_file: pairs.jsonl\ntraining: {warmup_ratio: 2}",
        "training.warmup_ratio",
        6,
        "<= 1",
    ),
    # probe: positions, splits, folds, case files, cross-section rules
    ("probe", "positions: [decision]", "positions: [middle]", "capture.positions[0]", 6, "prompt_end"),
    ("probe", "splits: [train]", "splits: [train, eval]", "data.splits[1]", 4, "held out"),
    ("probe", "cases: [cases.jsonl]", "cases: [missing.jsonl]", "data.cases[0]", 3, "not found"),
    ("probe", "output_dir: out\n", "output_dir: out\nprobes: {folds: 1}\n", "probes.folds", 2, ">= 2"),
    (
        "probe",
        "output_dir: out\n",
        "output_dir: out\nreport: {task: five_way}\nprobes: {tasks: [clarify_vs_call_tool]}\n",
        "report.task",
        2,
        "not among",
    ),
]


def _run(command: str, config: Path, *extra: str) -> int:
    return main([*command.split(), str(config), *extra])


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", list(VALID))
def test_the_valid_configs_load(command: str, place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = {
        "study": StudyConfig,
        "ablate": AblationConfig,
        "train sft": SFTRunConfig,
        "train simpo": SimPORunConfig,
        "train dpo": DPORunConfig,
        "train adv-sft": AdvSFTRunConfig,
        "probe": ProbeExperimentConfig,
    }[command]
    path = place / "c.yaml"
    path.write_text(VALID[command])
    monkeypatch.chdir(place.parent)  # not the config's folder: its relative paths still resolve
    load_config(cls, path, check_files=True)


@pytest.mark.parametrize(
    ("command", "old", "new", "field_name", "line", "word"), BAD, ids=[f"{b[0]}:{b[3]}" for b in BAD]
)
def test_each_bad_value_is_one_line_naming_file_line_and_field(
    command: str,
    old: str,
    new: str,
    field_name: str,
    line: int,
    word: str,
    place: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert old in VALID[command]
    path = place / "c.yaml"
    path.write_text(VALID[command].replace(old, new, 1))
    monkeypatch.chdir(place)
    assert _run(command, path) == 2
    error = _one_error(capsys)
    assert error.startswith(f"error: {path}:{line}: {field_name}: "), error
    assert word in error
    assert not (place / "out").exists()


def test_set_overrides_are_checked_and_named(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = place / "c.yaml"
    path.write_text(VALID["train sft"])
    assert _run("train sft", path, "--set", "lora.r=-1") == 2
    assert _one_error(capsys) == "error: --set: lora.r: must be > 0, got -1"
    assert _run("train sft", path, "--set", "lora.r=[") == 2
    assert "invalid YAML value" in _one_error(capsys)
    path.write_text(VALID["study"])
    assert _run("study", path, "--set", "steering.alphas=[1, x]") == 2
    assert _one_error(capsys).startswith("error: --set: steering.alphas[1]: expected float")
    assert not (place / "out").exists()


def test_an_interim_report_of_a_study_not_begun_is_one_line(
    place: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = place / "c.yaml"
    path.write_text(VALID["study"])
    monkeypatch.chdir(place)  # out_dir (out) is relative to the working folder
    assert _run("study", path, "--report-only") == 2
    assert _one_error(capsys) == "error: out/s: nothing to report yet: eval_sft has not finished"
    assert not (place / "out").exists()  # nothing made, not even the run folder


def test_every_problem_is_reported_at_once(place: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = place / "c.yaml"
    path.write_text("name: s\nout_dir: out\neval: {batch_size: 0}\nsteering:\n  alphas: [x]\nsft_set: [lora.r=0]\n")
    assert _run("study", path) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == ["eval.batch_size", "steering.alphas[0]", "sft_set[0]"]
    assert not (place / "out").exists()


def test_the_issue_example_is_refused_in_seconds_with_nothing_written(tmp_path: Path) -> None:
    config = tmp_path / "my.yaml"
    config.write_text("name: x\nsteering: {alphas: [1, 'x']}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        # -X importtime lists every module imported: "in seconds" means refused before torch or the trainers load
        # (a wall-clock bound here would fail on a busy machine, and say less)
        [sys.executable, "-X", "importtime", "-m", "toolprior.cli", "study", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr
    assert errors == [f"error: {config}:2: steering.alphas[1]: expected float, got 'x'"]
    assert "Traceback" not in done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "toolprior.cli" in imported or "toolprior" in imported  # the listing is there
    assert not imported & {"torch", "transformers", "trl", "peft"}, sorted(imported & {"torch", "transformers"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.yaml"]  # no runs/ folder


def test_a_study_in_another_folder_finds_the_shipped_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text("name: x\n")
    config = load_config(StudyConfig, "my.yaml", check_files=True)
    shipped = shipped_configs_dir()
    for name in ("sft_config", "simpo_config", "dpo_config", "adv_sft_config"):
        path = Path(getattr(config, name))
        assert path.is_file() and path.parent == shipped, (name, path)
    # the spelling the shipped configs use resolves to the package too, and nothing was written here
    (tmp_path / "old.yaml").write_text("name: y\nsft_config: experiments/configs/sft_smollm2.yaml\n")
    assert Path(load_config(StudyConfig, "old.yaml").sft_config) == shipped / "sft_smollm2.yaml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.yaml", "old.yaml"]


def test_paths_in_a_config_resolve_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "my_sft.yaml").write_text("lora: {r: 4}\n")
    (folder / "study.yaml").write_text("name: x\nsft_config: my_sft.yaml\n")
    (folder / "cases.jsonl").write_text("")
    (folder / "probe.yaml").write_text("data:\n  cases: [cases.jsonl]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    study = load_config(StudyConfig, folder / "study.yaml", check_files=True)
    assert Path(study.sft_config) == (folder / "my_sft.yaml").resolve()
    probe = load_config(ProbeExperimentConfig, folder / "probe.yaml", check_files=True)
    assert Path(probe.data.cases[0]) == (folder / "cases.jsonl").resolve()
    # a path typed on the command line is relative to where it is typed
    with pytest.raises(InputError, match=r"--set: data\.cases\[0\]: file or folder not found"):
        load_config(ProbeExperimentConfig, folder / "probe.yaml", ["data.cases=[cases.jsonl]"], check_files=True)


def test_the_shipped_configs_load() -> None:
    classes = {
        "study": StudyConfig,
        "demo": StudyConfig,
        "ablate": AblationConfig,
        "sft": SFTRunConfig,
        "simpo": SimPORunConfig,
        "dpo": DPORunConfig,
        "adv": AdvSFTRunConfig,
        "probe": ProbeExperimentConfig,
    }
    loaded = 0
    for path in sorted(shipped_configs_dir().glob("*.yaml")):
        cls = classes.get(path.stem.split("_")[0])
        if cls is not None:  # accelerate_*.yaml is accelerate's own file
            load_config(cls, path)
            loaded += 1
    assert loaded >= 14


def test_a_section_given_in_part_keeps_its_fields_own_defaults(tmp_path: Path) -> None:
    path = tmp_path / "adv.yaml"
    path.write_text("training:\n  learning_rate: 1.0e-4\n")
    config = load_config(AdvSFTRunConfig, path)
    # AdvSFTRunConfig.training's default differs from training.sft's TrainingSection: no NEFTune, no early stop
    assert config.training.learning_rate == 1e-4
    assert config.training.neftune_noise_alpha is None and config.training.early_stopping_patience is None


@dataclass
class Small:
    rates: list[float] = field(default_factory=list, metadata=check(gt=0))
    table: dict[str, list[int]] = field(default_factory=dict)
    mode: str | list[str] = field(default="a", metadata=check(choices=("a", "b")))


def test_elements_of_lists_and_mapping_values_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("rates:\n  - 1e-3\n  - -2\ntable:\n  x: [1, two]\nmode: [a, c]\n")
    with pytest.raises(InputError) as err:
        load_config(Small, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:3: rates[1]: must be > 0, got -2",
        f"{path}:5: table.x[1]: expected int, got 'two'",
        f"{path}:6: mode[1]: unknown value 'c'; expected one of a, b",
    ]
    path.write_text("rates: [1e-3]\nmode: b\n")
    assert load_config(Small, path).rates == [0.001]  # YAML 1.1 reads 1e-3 as text; a float field takes it


def test_conflicting_or_broken_overrides_are_input_errors() -> None:
    assert load_config(Small, None, ["table={x: [1]}", "table.x=[2]"]).table == {"x": [2]}
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        load_config(Small, None, ["=1"])
    with pytest.raises(InputError, match=r"--set: rates: expected a list"):
        load_config(Small, None, ["mode.x=1", "mode=a", "rates.y.z=2"])
