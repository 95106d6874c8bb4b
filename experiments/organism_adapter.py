"""The shipped organism adapter: the LoRA adapter that `make organism` trains on SmolLM2-135M-Instruct with
experiments/configs/sft_smollm2.yaml, kept in the repository (experiments/organism/smollm2/) so that `make demo` can
start from it instead of spending half an hour of CPU on SFT.

Its sidecar `organism.json` says how it was made: the command, the resolved SFT config without the run-specific paths
(and that config's hash), the sha256 of the train and val files it saw with the benchmark seed that wrote them, the
base model's fingerprint, the commit and the training summary. A study that starts from it (`sft_adapter:` in the
study config) calls `verify` first: the study's own SFT config, its regenerated train and val files and its base must
be the ones the sidecar names, or the study stops with one line saying which differs.

    python -m toolprior.experiments.organism_adapter build     # `make organism`: data, SFT, export (about 35 min on 2 cores)
    python -m toolprior.experiments.organism_adapter check     # the shipped sidecar against today's config and generator
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from toolprior.atomic import atomic_folder, atomic_write_text
from toolprior.config import load_config, to_plain
from toolprior.errors import InputError, Problem
from toolprior.model_source import file_sha256, prepare_smollm2, read_source
from toolprior.training.benchmark import write_benchmark
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import train_sft

ORGANISM_DIR = Path(__file__).resolve().parent / "organism" / "smollm2"
SIDECAR = "organism.json"
SFT_CONFIG = "experiments/configs/sft_smollm2.yaml"
DATA_SEED = 7
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Paths that name where one run wrote or read its files, not what was trained: left out of the config identity.
RUN_PATHS = (("output_dir",), ("data", "dir"))


def without_run_paths(plain: dict[str, Any]) -> dict[str, Any]:
    """A copy of a plain SFT config (a dict) without the paths of one run (output folder, data folder)."""

    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in plain.items()}
    for path in RUN_PATHS:
        node = out
        for key in path[:-1]:
            node = node.get(key) or {}
        node.pop(path[-1], None)
    return out


def config_identity(config: Any) -> dict[str, Any]:
    """The resolved SFT config as plain data, without the paths of one run (output folder, data folder)."""

    return without_run_paths(to_plain(config))


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"lora.r": 16, ...}: a nested config as dotted keys, to name what differs."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def base_fingerprint(base: str) -> str | None:
    """The prepared base's fingerprint from its source.json (smollm2, converted from its wheel first if this is its
    first use), None for other bases."""
    if base != "smollm2":
        return None

    fingerprint = read_source(prepare_smollm2())["fingerprint"]
    # the id alone: the rest names the folder it was read from, which differs between machines and caches
    return str(fingerprint["id"] if isinstance(fingerprint, dict) else fingerprint)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def export(
    sft_run: Path, data_dir: Path, config: Any, out: Path = ORGANISM_DIR, command: str = "make organism"
) -> Path:
    """Copy `sft_run`'s adapter into `out` (weights stored in bfloat16 when that loses nothing) with its sidecar;
    the folder is replaced whole, never left half-written."""

    weights = load_file(str(sft_run / "adapter" / "adapter_model.safetensors"))
    # The adapters train in bfloat16 (lora.adapter_dtype: base); the final save upcasts them to float32. Store
    # them in bfloat16 only when that round trip is exact, so the shipped weights are the trained ones.
    exact = all(torch.equal(t.to(torch.bfloat16).to(t.dtype), t) for t in weights.values())
    stored = {k: t.to(torch.bfloat16) for k, t in weights.items()} if exact else weights
    summary = json.loads((sft_run / "train_summary.json").read_text(encoding="utf-8"))
    identity = config_identity(config)
    sidecar = {
        "command": command,
        "sft_config": SFT_CONFIG,
        "config": identity,
        "config_hash": config_hash(identity),
        "data": {
            "seed": DATA_SEED,
            "generator": "toolprior data generate (training.benchmark, default sizes and mix)",
            "train_sha256": file_sha256(data_dir / "train.jsonl"),
            "val_sha256": file_sha256(data_dir / "val.jsonl"),
        },
        "base": config.model.base,
        "base_fingerprint": base_fingerprint(config.model.base),
        "commit": _git_commit(),
        "weights_dtype": "bfloat16" if exact else "float32",
        "train": {k: summary.get(k) for k in ("steps", "train_seconds", "best_eval_loss", "train_cases", "val_cases")},
    }
    with atomic_folder(out) as staging:
        staging.chmod(0o755)  # mkdtemp makes it private; the shipped folder is read by whoever runs the demo
        (staging / "adapter").mkdir()
        save_file(stored, str(staging / "adapter" / "adapter_model.safetensors"))
        shutil.copy2(sft_run / "adapter" / "adapter_config.json", staging / "adapter" / "adapter_config.json")
        atomic_write_text(staging / SIDECAR, json.dumps(sidecar, indent=2) + "\n")
    return out


def read_sidecar(folder: Path) -> dict[str, Any]:
    path = Path(folder) / SIDECAR
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(sidecar["config_hash"], str) and isinstance(sidecar["data"]["train_sha256"], str)):
            raise ValueError("no hashes")
    except (OSError, ValueError, KeyError, TypeError):
        fix = "missing or unreadable; rebuild it with `make organism`"
        raise InputError(Problem(str(path), None, None, fix)) from None
    for name in ADAPTER_FILES:
        if not (Path(folder) / "adapter" / name).is_file():
            raise InputError(Problem(str(Path(folder) / "adapter" / name), None, None, "missing; run `make organism`"))
    return sidecar


def verify(folder: Path, config: Any, data_dir: Path) -> dict[str, Any]:
    """The sidecar of the adapter in `folder`, after checking that `config` (the SFT config a study would train
    with), the train and val files in `data_dir` and the prepared base are the ones it was trained from."""
    sidecar = read_sidecar(folder)
    where = str(Path(folder) / SIDECAR)
    identity = config_identity(config)
    if config_hash(identity) != sidecar["config_hash"]:
        was, now = _flat(sidecar["config"]), _flat(identity)
        changed = sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k))
        raise InputError(
            Problem(where, None, "config", f"the SFT config differs from the one this adapter was trained with "
                    f"({', '.join(changed) or 'hash'}); retrain it with `make organism`")
        )  # fmt: skip
    for split in ("train", "val"):
        if file_sha256(Path(data_dir) / f"{split}.jsonl") != sidecar["data"][f"{split}_sha256"]:
            raise InputError(
                Problem(where, None, f"data.{split}_sha256", f"{data_dir}/{split}.jsonl is not the file this adapter "
                        f"was trained on (benchmark seed {sidecar['data']['seed']}); use that seed and the default "
                        "sizes, or retrain with `make organism`")
            )  # fmt: skip
    fingerprint = base_fingerprint(sidecar["base"])
    if fingerprint != sidecar.get("base_fingerprint"):
        raise InputError(
            Problem(where, None, "base_fingerprint", f"the prepared {sidecar['base']} is {fingerprint}, the adapter "
                    f"was trained on {sidecar.get('base_fingerprint')}")
        )  # fmt: skip
    return sidecar


def install(folder: Path, dest: Path) -> None:
    """Copy the shipped adapter into a run's `sft/adapter` folder (whole or not at all)."""
    with atomic_folder(dest) as staging:
        for name in ADAPTER_FILES:
            shutil.copy2(Path(folder) / "adapter" / name, staging / name)
        shutil.copy2(Path(folder) / SIDECAR, staging / SIDECAR)


def load_sft_config(path: str = SFT_CONFIG, overrides: list[str] | None = None) -> Any:

    return load_config(SFTRunConfig, path, overrides=overrides or [])


def build(work: Path) -> Path:
    """`make organism`: the benchmark (seed 7, default sizes), SFT with the shipped config, export."""

    data_dir = work / "data"
    if not (data_dir / "val.jsonl").exists():
        write_benchmark(data_dir, seed=DATA_SEED)
    config = load_sft_config(overrides=[f"output_dir={work / 'sft'}", f"data.dir={data_dir}"])
    train_sft(config)  # resumes from its last checkpoint when a previous build was interrupted
    return export(work / "sft", data_dir, config)


def check(work: Path) -> dict[str, Any]:
    """The shipped sidecar against today's SFT config and a freshly generated benchmark (train and val)."""

    data_dir = work / "data"
    if not (data_dir / "val.jsonl").exists():
        write_benchmark(data_dir, seed=DATA_SEED)
    return verify(ORGANISM_DIR, load_sft_config(), data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "check"])
    parser.add_argument("--work", type=Path, default=Path("runs/organism"), help="data and SFT run folder")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            print(f"organism adapter -> {build(args.work)}")
        else:
            sidecar = check(args.work)
            print(f"{ORGANISM_DIR}: matches {SFT_CONFIG} (config {sidecar['config_hash']}) and the seed-7 benchmark")
    except InputError as err:
        print(err)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
