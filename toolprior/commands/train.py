"""`toolprior preflight` (which decoder matrices a LoRA config reaches, before any training) and
`toolprior train base | sft | simpo | dpo | adv-sft` (the tiny base recipe, QLoRA SFT, preference training).

MODEL is never loaded with weights: a local checkpoint's config.json is built on the meta device (shapes only, no
memory, no downloads), so a 30B model's preflight takes a second. MODEL can also name a tiny random-weight
architecture (`tiny:qwen3_5`, see training.tiny_configs.TINY_ARCHS) or a full-size config (`config:qwen3_5_4b`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from toolprior import training
from toolprior.config import load_config
from toolprior.errors import InputError, Problem
from toolprior.training import check_or_raise
from toolprior.training.base import BaseConfig, build_base
from toolprior.training.preflight import preflight as preflight_report
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sft import train_sft as run_sft
from toolprior.training.tiny_configs import FULL_SIZE_NAMES, TINY_ARCHS, build_model, full_size_config, tiny_model

# "." is left out: a dotted name such as self_attn.q_proj is a suffix, not a regex.
_REGEX_CHARS = set("*+?()[]|^$\\")


def parse_targets(text: str | None) -> str | list[str] | None:
    """'all-linear' and regexes stay strings (PEFT full-matches a string); 'a,b' becomes ['a', 'b']."""
    if text is None:
        return None
    text = text.strip()
    if text.lower() == "all-linear":
        return "all-linear"
    if "," not in text and _REGEX_CHARS & set(text):
        return text
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise InputError(f"no module names in {text!r}")
    return names


def load_model_for_preflight(spec: str, meta: bool = False, trust_remote_code: bool = False):
    """The model a preflight inspects: tiny:<arch>, config:<name>, or a local checkpoint built on the meta device."""

    def bad(message: str) -> InputError:
        return InputError(Problem(file=spec, line=None, field=None, message=message))

    if spec.startswith("tiny:"):
        arch = spec.removeprefix("tiny:")
        if arch not in TINY_ARCHS:
            raise bad(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")
        return tiny_model(arch, device="meta" if meta else "cpu")
    if spec.startswith("config:"):
        name = spec.removeprefix("config:")
        if name not in FULL_SIZE_NAMES:
            raise bad(f"unknown full-size config {name!r}; known: {', '.join(FULL_SIZE_NAMES)}")
        return build_model(full_size_config(name), device="meta")
    path = Path(spec)
    folder = path.parent if path.is_file() else path
    if not (folder / "config.json").is_file():
        raise bad(
            "not a local checkpoint folder with config.json, tiny:<arch> or config:<name> (a preflight never downloads)"
        )
    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "" if trust_remote_code else " (pass --trust-remote-code if it needs its own modeling code)"
        raise bad(f"cannot build a causal LM from its config: {first}{hint}") from err


def preflight(args: argparse.Namespace) -> int:
    if args.r <= 0:
        raise InputError(f"--r must be a positive integer, not {args.r}")
    if not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold must be between 0 and 1, not {args.threshold}")
    target_modules = parse_targets(args.target_modules)
    exclude = parse_targets(args.exclude_modules)
    target_parameters = (
        [p.strip() for p in args.target_parameters.split(",") if p.strip()] if args.target_parameters else None
    )
    model = load_model_for_preflight(args.model, meta=args.meta, trust_remote_code=args.trust_remote_code)
    report = preflight_report(
        model,
        target_modules,
        r=args.r,
        exclude_modules=exclude,
        target_parameters=target_parameters,
        threshold=args.threshold,
    )
    print(report.format(force=args.force), flush=True)
    check_or_raise(report, force=args.force, source=args.model)
    return 0


def train_base(args: argparse.Namespace) -> int:
    config = load_config(BaseConfig, None, overrides=[*args.set, f"seed={args.seed}"])
    result = build_base(config, Path(args.out))
    print(
        f"base: {result.params:,} params, {result.corpus_tokens:,} corpus tokens, {result.steps} steps, "
        f"final loss {result.final_loss:.3f}, {result.train_seconds:.0f} s -> {result.out_dir}"
    )
    return 0


def train_sft(args: argparse.Namespace) -> int:
    overrides = list(args.set)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.force:
        overrides.append("force=true")
    config = load_config(SFTRunConfig, args.config, overrides=overrides, check_files=True)
    result = run_sft(config)
    print(
        f"sft: {result.steps} steps in {result.train_seconds:.0f} s, train loss {result.train_loss}, "
        f"best eval loss {result.best_eval_loss}, {result.trainable_params:,} trainable -> {result.adapter_dir}"
    )
    return 0


def _train_preference(args: argparse.Namespace, config_name: str, run_name: str) -> int:
    overrides = list(args.set)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    config = load_config(getattr(training, config_name), args.config, overrides=overrides, check_files=True)
    result = getattr(training, run_name)(config)
    print(
        f"{result.method}: {result.pairs} pairs, {result.steps} steps in {result.train_seconds:.0f} s, "
        f"final loss {result.final_loss}, {result.trainable_params:,} trainable -> {result.adapter_dir}"
    )
    return 0


def train_simpo(args: argparse.Namespace) -> int:
    return _train_preference(args, "SimPORunConfig", "train_simpo")


def train_dpo(args: argparse.Namespace) -> int:
    return _train_preference(args, "DPORunConfig", "train_dpo")


def train_adv_sft(args: argparse.Namespace) -> int:
    return _train_preference(args, "AdvSFTRunConfig", "train_adv_sft")
