"""`toolprior preflight` (which decoder matrices a LoRA config reaches, before any training) and
`toolprior train base | sft | simpo | dpo | adv-sft` (the tiny base recipe, QLoRA SFT, preference training).

MODEL is never loaded with weights: a local checkpoint's config.json is built on the meta device (shapes only, no
memory, no downloads), so a 30B model's preflight takes a second. MODEL can also name a tiny random-weight
architecture (`tiny:qwen3_5`, see training.tiny_configs.TINY_ARCHS) or a full-size config (`config:qwen3_5_4b`).
"""

from __future__ import annotations

import argparse

from toolprior.commands.options.common import print_help_and_exit

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
    pre.set_defaults(run=("train", "preflight"), quiet_libraries=True)

    train = subparsers.add_parser("train", help="train the tiny base, or QLoRA SFT an agent")
    sub = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    base = sub.add_parser("base", help="train the BPE tokenizer and pre-train the tiny base from scratch")
    base.add_argument("--out", required=True, help="output folder (safetensors + tokenizer + base_recipe.json)")
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a BaseConfig field")
    base.set_defaults(run=("train", "train_base"))
    sft = sub.add_parser("sft", help="QLoRA SFT with TRL from a YAML config (preflight runs first)")
    sft.add_argument("config", help="YAML file filling training.sft.SFTRunConfig")
    sft.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. lora.r=8")
    sft.add_argument("--output-dir", default=None, help="override output_dir")
    sft.add_argument("--force", action="store_true", help="train even when the preflight refuses the targets")
    sft.set_defaults(run=("train", "train_sft"), quiet_libraries=True)
    for name, what, config_cls, func in (
        ("simpo", "SimPO (TRL CPOTrainer, loss simpo, cpo_alpha 0)", "SimPORunConfig", "train_simpo"),
        ("dpo", "DPO (reference = the SFT agent)", "DPORunConfig", "train_dpo"),
        ("adv-sft", "adversarial SFT (SFT on the chosen turns)", "AdvSFTRunConfig", "train_adv_sft"),
    ):
        pref = sub.add_parser(name, help=f"{what} on mined pairs, continuing the SFT adapter, from a YAML config")
        pref.add_argument("config", help=f"YAML file filling training.{config_cls}")
        pref.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. training.max_steps=3"
        )
        pref.add_argument("--output-dir", default=None, help="override output_dir")
        pref.set_defaults(run=("train", func), quiet_libraries=True)
    print_help_and_exit(train, 0)
