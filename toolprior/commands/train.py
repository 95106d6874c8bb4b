"""`toolprior preflight` (which decoder matrices a LoRA config reaches, before any training) and
`toolprior train base | sft | simpo | dpo | adv-sft` (the tiny base recipe, QLoRA SFT, preference training).

MODEL is never loaded with weights: a local checkpoint's config.json is built on the meta device (shapes only, no
memory, no downloads), so a 30B model's preflight takes a second. MODEL can also name a tiny random-weight
architecture (`tiny:qwen3_5`, see training.tiny_configs.TINY_ARCHS) or a full-size config (`config:qwen3_5_4b`).
"""

from __future__ import annotations

import argparse

TARGET_HELP = (
    "all-linear, a comma list of module names (q_proj,k_proj,v_proj,o_proj: PEFT suffix match), "
    "or one regex (PEFT full match)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    pre = subparsers.add_parser(
        "preflight",
        help="show which decoder matrices a LoRA config reaches; exit 2 when it misses most of them",
        description=(
            "Lists every weight matrix in the decoder blocks, asks PEFT's own matching code which ones the LoRA "
            "config reaches, and prints coverage and the LoRA parameter count. Refuses (exit 2) a config that "
            "reaches less than --threshold of the decoder's linear parameters, misses a whole kind of matrix with "
            "more than 10%% of them, or names a module PEFT cannot wrap; --force accepts the first two."
        ),
    )
    pre.add_argument(
        "model",
        metavar="MODEL",
        help="local checkpoint folder (or its config.json), tiny:<arch>, or config:<name> (qwen3_5_4b, gemma4_text)",
    )
    pre.add_argument("--target-modules", default="all-linear", help=TARGET_HELP + " (default all-linear)")
    pre.add_argument(
        "--target-parameters",
        default=None,
        help="comma list of parameter names for fused MoE experts, e.g. experts.gate_up_proj,experts.down_proj",
    )
    pre.add_argument("--exclude-modules", default=None, help="comma list of module names, or one regex")
    pre.add_argument("--r", type=int, default=32, help="LoRA rank (default 32)")
    pre.add_argument("--threshold", type=float, default=0.5, help="minimum coverage of decoder linear params")
    pre.add_argument("--force", action="store_true", help="print the table and exit 0 even when coverage is short")
    pre.add_argument(
        "--meta", action="store_true", help="build tiny:<arch> on the meta device too (checkpoints always are)"
    )
    pre.add_argument(
        "--trust-remote-code", action="store_true", help="allow a checkpoint's own modeling code (off by default)"
    )
    pre.set_defaults(func=_preflight)

    train = subparsers.add_parser("train", help="train the tiny base, or QLoRA SFT an agent")
    sub = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    base = sub.add_parser("base", help="train the BPE tokenizer and pre-train the tiny base from scratch")
    base.add_argument("--out", required=True, help="output folder (safetensors + tokenizer + base_recipe.json)")
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a BaseConfig field")
    base.set_defaults(func=_train_base)
    sft = sub.add_parser("sft", help="QLoRA SFT with TRL from a YAML config (preflight runs first)")
    sft.add_argument("config", help="YAML file filling training.sft.SFTRunConfig")
    sft.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. lora.r=8")
    sft.add_argument("--output-dir", default=None, help="override output_dir")
    sft.add_argument("--force", action="store_true", help="train even when the preflight refuses the targets")
    sft.set_defaults(func=_train_sft)
    for name, what, config_cls, func in (
        ("simpo", "SimPO (TRL CPOTrainer, loss simpo, cpo_alpha 0)", "SimPORunConfig", _train_simpo),
        ("dpo", "DPO (reference = the SFT agent)", "DPORunConfig", _train_dpo),
        ("adv-sft", "adversarial SFT (SFT on the chosen turns)", "AdvSFTRunConfig", _train_adv_sft),
    ):
        pref = sub.add_parser(name, help=f"{what} on mined pairs, continuing the SFT adapter, from a YAML config")
        pref.add_argument("config", help=f"YAML file filling training.{config_cls}")
        pref.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. training.max_steps=3"
        )
        pref.add_argument("--output-dir", default=None, help="override output_dir")
        pref.set_defaults(func=func)
    train.set_defaults(func=lambda args: train.print_help() or 0)


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
        from toolprior.errors import InputError

        raise InputError(f"no module names in {text!r}")
    return names


def load_model_for_preflight(spec: str, meta: bool = False, trust_remote_code: bool = False):
    """The model a preflight inspects: tiny:<arch>, config:<name>, or a local checkpoint built on the meta device."""
    from pathlib import Path

    from toolprior.errors import InputError, Problem
    from training.tiny_configs import FULL_SIZE_NAMES, TINY_ARCHS, build_model, full_size_config, tiny_model

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
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "" if trust_remote_code else " (pass --trust-remote-code if it needs its own modeling code)"
        raise bad(f"cannot build a causal LM from its config: {first}{hint}") from err


def _quiet_libraries() -> None:
    """Keep library chatter (bitsandbytes kernel hints, transformers config warnings) off stderr."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _preflight(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from toolprior.errors import InputError
    from training import check_or_raise, preflight

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
    report = preflight(
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


def _train_base(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolprior.config import load_config
    from training.base import BaseConfig, build_base

    config = load_config(BaseConfig, None, overrides=[*args.set, f"seed={args.seed}"])
    result = build_base(config, Path(args.out))
    print(
        f"base: {result.params:,} params, {result.corpus_tokens:,} corpus tokens, {result.steps} steps, "
        f"final loss {result.final_loss:.3f}, {result.train_seconds:.0f} s -> {result.out_dir}"
    )
    return 0


def _train_sft(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from toolprior.config import load_config
    from training.sft import SFTRunConfig, train_sft

    overrides = list(args.set)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.force:
        overrides.append("force=true")
    config = load_config(SFTRunConfig, args.config, overrides=overrides, check_files=True)
    result = train_sft(config)
    print(
        f"sft: {result.steps} steps in {result.train_seconds:.0f} s, train loss {result.train_loss}, "
        f"best eval loss {result.best_eval_loss}, {result.trainable_params:,} trainable -> {result.adapter_dir}"
    )
    return 0


def _train_preference(args: argparse.Namespace, config_name: str, run_name: str) -> int:
    _quiet_libraries()
    import training
    from toolprior.config import load_config

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


def _train_simpo(args: argparse.Namespace) -> int:
    return _train_preference(args, "SimPORunConfig", "train_simpo")


def _train_dpo(args: argparse.Namespace) -> int:
    return _train_preference(args, "DPORunConfig", "train_dpo")


def _train_adv_sft(args: argparse.Namespace) -> int:
    return _train_preference(args, "AdvSFTRunConfig", "train_adv_sft")
