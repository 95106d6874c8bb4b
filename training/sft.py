"""QLoRA SFT with TRL's SFTTrainer: NF4 base (bitsandbytes), LoRA (PEFT), assistant-only loss, NEFTune, early
stopping on validation loss, resume from the last checkpoint, adapter save and optional merged export.

    toolprior train sft experiments/configs/sft_organism.yaml --set training.learning_rate=1e-3

A run folder holds `checkpoint-*` (while training), `adapter/` (the result), `merged/` (if asked),
`train_summary.json` and `config.yaml` (the resolved config).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolprior.atomic import atomic_write_text
from toolprior.cases import Case
from toolprior.config import INPUT_PATH, MODEL_PATH, CheckContext, check, dump_yaml, known, max_steps_rule
from training.checkpoints import (
    finish_from_checkpoint,
    keep_4bit_layout_for_training,
    keep_dtypes_on_resume,
    last_complete_checkpoint,
    stopped_at,
)

QUANTIZE = known("toolprior.modeling", "QUANTIZE")
DTYPES = known("toolprior.modeling", "DTYPES")
# What `lora.adapter_dtype` may be (see LoraSection): train_sft builds the PEFT model accordingly.
ADAPTER_DTYPES: tuple[str, ...] = ("float32", "base")


def trainable_tokens_rule(value: Any) -> str | None:
    """`format` (the format's tags) or a list of tokens: a single string must be `format`."""
    if isinstance(value, str) and value != "format":
        return f"expected 'format' or a list of tokens, got {value!r}"
    return None


@dataclass
class ModelSection:
    base: str = field(default="organism", metadata=check(path=MODEL_PATH))
    quantize: str = field(default="nf4", metadata=check(choices=QUANTIZE))
    dtype: str = field(default="float32", metadata=check(choices=DTYPES))
    trust_remote_code: bool = False
    device: str | None = None
    quant_storage: str | None = field(
        default=None, metadata=check(choices=DTYPES)
    )  # "bfloat16" for FSDP-QLoRA (see experiments/configs/accelerate_fsdp_qlora.yaml)


@dataclass
class LoraSection:
    r: int = field(default=32, metadata=check(gt=0))
    alpha: int = field(default=64, metadata=check(gt=0))
    dropout: float = field(default=0.05, metadata=check(ge=0, lt=1))
    target_modules: str | list[str] = field(default="all-linear", metadata=check(nonempty=True))
    exclude_modules: list[str] | None = None
    # Embedding rows trained besides LoRA (PEFT trainable tokens): "format" = the format's tags that the tokenizer
    # holds as added tokens (`toolprior.tokenizer.FORMAT_TOKENS`, new rows on a real base such as SmolLM2), or a
    # list of tokens. Tied input/output embeddings stay tied. Every other row is left as it is.
    trainable_tokens: str | list[str] | None = field(
        default=None, metadata=check(rule=trainable_tokens_rule, whole=True, nonempty=True)
    )
    # "float32": PEFT's default (adapters upcast to fp32 over a bf16 base). "base": adapters in the base model's
    # dtype, as TRL does for QLoRA; on CPU a bf16 base with bf16 adapters trains 1.4x faster (README, the organism).
    adapter_dtype: str = field(default="float32", metadata=check(choices=ADAPTER_DTYPES))


@dataclass
class DataSection:
    dir: str = "runs/data"
    train_file: str | None = field(default=None, metadata=check(path=INPUT_PATH))
    val_file: str | None = field(default=None, metadata=check(path=INPUT_PATH))
    max_train_cases: int | None = field(default=None, metadata=check(ge=1))
    # The validation loss only drives early stopping and checkpoint choice; a slice of val is enough for that.
    max_val_cases: int | None = field(default=None, metadata=check(ge=1))
    # The case study's multi-turn arc: a clarify case that has a follow-up trains as two turns (clarify; the user
    # answers; think about the resolved ambiguity, then the tool call), so the hypothesis that the model compresses
    # that arc into one turn can be tested. Off: every case trains on its first turn only.
    clarify_arc: bool = False

    def check_config(self, ctx: CheckContext) -> None:
        """The train and val files SFT reads: given one by one, or train.jsonl / val.jsonl in `dir`."""
        if self.train_file is not None and self.val_file is not None:
            return
        self.dir = ctx.resolve("dir", self.dir, INPUT_PATH)
        folder = Path(self.dir)
        if ctx.check_files and folder.is_dir():
            for name, given in (("train.jsonl", self.train_file), ("val.jsonl", self.val_file)):
                if given is None and not (folder / name).is_file():
                    ctx.problem("dir", f"holds no {name} ({folder}); generate it with `toolprior data generate`")


@dataclass
class TrainingSection:
    """The SFTConfig fields a recipe usually sets; anything else of TRL's SFTConfig goes under `extra`."""

    learning_rate: float = field(default=2e-4, metadata=check(gt=0))
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = field(default=0.03, metadata=check(ge=0, le=1))
    per_device_train_batch_size: int = field(default=4, metadata=check(ge=1))
    gradient_accumulation_steps: int = field(default=4, metadata=check(ge=1))
    num_train_epochs: float = field(default=2.0, metadata=check(gt=0))
    max_steps: int = field(default=-1, metadata=check(rule=max_steps_rule))
    neftune_noise_alpha: float | None = field(default=5.0, metadata=check(ge=0))
    assistant_only_loss: bool = True
    max_length: int = field(default=1024, metadata=check(ge=1))
    weight_decay: float = field(default=0.0, metadata=check(ge=0))
    max_grad_norm: float = field(default=1.0, metadata=check(ge=0))
    eval_steps: int = field(default=50, metadata=check(ge=1))
    save_steps: int = field(default=50, metadata=check(ge=1))
    logging_steps: int = field(default=10, metadata=check(ge=1))
    early_stopping_patience: int | None = field(default=3, metadata=check(ge=1))
    save_total_limit: int = field(default=2, metadata=check(ge=1))
    # Batches of similar length waste less compute on padding (5x on CPU with the organism's mixed lengths).
    train_sampling_strategy: str = "group_by_length"
    # None: on for CUDA (memory), off on CPU where recomputing activations doubles the time of a tiny model.
    gradient_checkpointing: bool | None = None
    seed: int = 0
    # CPU only: the loss applies the LM head to the labelled positions alone (training.labelled_loss), not TRL's
    # fused head over every position in float32.
    labelled_positions_loss: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SFTRunConfig:
    output_dir: str = "runs/sft"
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    merge: bool = False
    force: bool = False


@dataclass(frozen=True)
class SFTResult:
    output_dir: Path
    adapter_dir: Path
    train_seconds: float
    steps: int
    train_loss: float | None
    best_eval_loss: float | None
    trainable_params: int
    resumed_from: str | None
    train_tokens: int | None = None  # non-padding tokens seen (TRL's num_tokens), for tokens/s
    peak_memory_bytes: int | None = None  # CUDA only: torch.cuda.max_memory_allocated over the training loop


def case_row(case: Case, clarify_arc: bool = False) -> dict[str, Any]:
    """One conversational row for TRL: prompt messages + the gold assistant turn, tools as a JSON string (Arrow
    cannot hold tool schemas of differing shapes in one column). With `clarify_arc`, a clarify case with a
    follow-up also carries the user's answer and the resolved tool call (see `resolved_turn`)."""
    from toolprior.chat_template import gold_chat
    from toolprior.output_format import render_turn

    messages, tools = gold_chat(case)
    resolved = resolved_turn(case) if clarify_arc else None
    if resolved is not None:
        messages += [m.to_dict() for m in case.followups]
        messages.append({"role": "assistant", "content": render_turn(resolved)})
    return {"messages": messages, "tools": json.dumps(tools, ensure_ascii=False)}


def resolved_turn(case: Case) -> Any:
    """The second assistant turn of a clarify case's arc: after the user's answer, a think that the ambiguity is
    resolved and the tool call the benchmark recorded (`meta.followup_call`); None when the case has no arc."""
    from toolprior.actions import Action
    from toolprior.cases import GoldTurn, ToolCall

    call = case.meta.get("followup_call") if isinstance(case.meta, dict) else None
    if case.expected_action != Action.CLARIFY or not case.followups or not call:
        return None
    answer = case.followups[-1].content.strip()
    think = f'The user answered "{answer}", so the request is no longer ambiguous. I have what {call["name"]} needs.'
    return GoldTurn(think=think, action=Action.CALL_TOOL, tool_calls=(ToolCall(call["name"], call["arguments"]),))


def fit_rows(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> tuple[list[dict[str, Any]], int]:
    """Rows whose tokenized conversation fits in `max_length`, and how many were left out."""
    kept = []
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tools=json.loads(row["tools"]) or None, tokenize=False)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= max_length:
            kept.append(row)
    return kept, len(rows) - len(kept)


def load_training_cases(config: SFTRunConfig) -> tuple[list[Case], list[Case]]:
    from toolprior.case_io import read_cases

    data_dir = Path(config.data.dir)
    train = read_cases(config.data.train_file or data_dir / "train.jsonl")
    val = read_cases(config.data.val_file or data_dir / "val.jsonl")
    for case in [*train, *val]:
        if case.gold is None:
            from toolprior.errors import InputError

            raise InputError(f"case {case.id}: SFT needs a gold turn on every training and validation case")
    if config.data.max_train_cases is not None:
        train = train[: config.data.max_train_cases]
    if config.data.max_val_cases is not None:
        val = val[: config.data.max_val_cases]
    return train, val


def trainable_token_ids(section: LoraSection, tokenizer: Any) -> list[int] | None:
    """The ids of `section.trainable_tokens` in `tokenizer`; each must be a single token of its vocabulary."""
    if section.trainable_tokens is None:
        return None
    from toolprior.errors import InputError, Problem
    from toolprior.tokenizer import FORMAT_TOKENS

    tokens = list(FORMAT_TOKENS) if section.trainable_tokens == "format" else list(section.trainable_tokens)
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise InputError(
            Problem("<sft config>", None, "lora.trainable_tokens", f"not single tokens of the tokenizer: {missing}")
        )
    return [int(vocab[t]) for t in tokens]


def lora_config(section: LoraSection, tokenizer: Any = None) -> Any:
    from peft import LoraConfig

    token_ids = trainable_token_ids(section, tokenizer) if tokenizer is not None else None
    extra: dict[str, Any] = {}
    if token_ids:
        extra = {"trainable_token_indices": token_ids}
        if "ensure_weight_tying" in LoraConfig.__dataclass_fields__:  # newer PEFT; older ones tie trainable tokens
            extra["ensure_weight_tying"] = True
    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=section.target_modules,
        exclude_modules=section.exclude_modules,
        task_type="CAUSAL_LM",
        **extra,
    )


def expose_head_bias(model: Any) -> None:
    """Let TRL's fused LM head read `lm_head.bias` through PEFT's trainable-token wrapper.

    TRL (1.x) computes the loss from `lm_head.weight` and `lm_head.bias` directly, without building the logits. On
    a model with tied embeddings, trainable tokens wrap the LM head too; the wrapper gives the merged `weight` (the
    trained rows in place, so gradients reach them) but raises on `bias`. A bias-free head's bias is None."""
    from peft.utils.other import TrainableTokensWrapper
    from torch import nn

    for module in model.modules():
        if isinstance(module, TrainableTokensWrapper) and "bias" not in module.__dict__:
            base = module.token_adapter.base_layer
            if isinstance(base, nn.Linear) and base.bias is None:
                module.bias = None


def sft_config(config: SFTRunConfig, use_cpu: bool, has_eval: bool) -> Any:
    from trl import SFTConfig

    t = config.training
    early = t.early_stopping_patience is not None and has_eval
    kwargs: dict[str, Any] = dict(
        output_dir=config.output_dir,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        # transformers 5 takes the warmup ratio as a float in [0, 1) through warmup_steps
        warmup_steps=float(t.warmup_ratio),
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=max(t.per_device_train_batch_size, 8),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        neftune_noise_alpha=t.neftune_noise_alpha,
        assistant_only_loss=t.assistant_only_loss,
        max_length=t.max_length,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps if has_eval else None,
        save_total_limit=t.save_total_limit,
        train_sampling_strategy=t.train_sampling_strategy,
        gradient_checkpointing=(not use_cpu) if t.gradient_checkpointing is None else t.gradient_checkpointing,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        seed=t.seed,
        data_seed=t.seed,
        report_to=[],
        use_cpu=use_cpu,
        bf16=(config.model.dtype == "bfloat16") and not use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    kwargs.update(t.extra)
    try:
        return SFTConfig(**kwargs)
    except (TypeError, ValueError) as err:  # TRL/transformers reject a combination: one line, not a traceback
        from toolprior.errors import InputError, Problem

        raise InputError(Problem("<sft config>", None, "training", str(err).splitlines()[0])) from None


def train_sft(config: SFTRunConfig, progress: bool = True) -> SFTResult:
    """Run (or resume) one QLoRA SFT; refuses to start when the preflight finds the LoRA targets miss most of the
    model (unless `config.force`)."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from toolprior.modeling import load_model, load_tokenizer
    from training.labelled_loss import LabelledPositionsSFTTrainer
    from training.preflight import check_or_raise, preflight

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(config))
    train_cases, val_cases = load_training_cases(config)
    tokenizer = load_tokenizer(config.model.base, trust_remote_code=config.model.trust_remote_code)
    model = load_model(
        config.model.base,
        quantize=config.model.quantize,
        dtype=config.model.dtype,
        device=config.model.device,
        trust_remote_code=config.model.trust_remote_code,
        quant_storage=config.model.quant_storage,
    )
    report = preflight(model, config.lora.target_modules, r=config.lora.r, exclude_modules=config.lora.exclude_modules)
    print(report.format())
    check_or_raise(report, force=config.force)

    arc = config.data.clarify_arc
    train_rows, dropped = fit_rows([case_row(c, arc) for c in train_cases], tokenizer, config.training.max_length)
    val_rows, val_dropped = fit_rows([case_row(c) for c in val_cases], tokenizer, config.training.max_length)
    if dropped or val_dropped:
        # TRL truncates from the end, which is where the assistant's action is: drop such cases instead.
        print(
            f"left out {dropped} train and {val_dropped} val cases longer than max_length={config.training.max_length}"
        )
    train_ds = Dataset.from_list(train_rows)
    val_ds = Dataset.from_list(val_rows) if val_rows else None
    use_cpu = not torch.cuda.is_available() or config.model.device == "cpu"
    args = sft_config(config, use_cpu=use_cpu, has_eval=val_ds is not None)
    callbacks = []
    if args.load_best_model_at_end and config.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.training.early_stopping_patience))
    peft_config = lora_config(config.lora, tokenizer)
    if config.lora.adapter_dtype == "base":
        from peft import get_peft_model

        model, peft_config = get_peft_model(model, peft_config, autocast_adapter_dtype=False), None
    elif config.lora.adapter_dtype not in ADAPTER_DTYPES:  # a config built in code skips the loader's check
        from toolprior.errors import InputError, Problem

        raise InputError(Problem("<sft config>", None, "lora.adapter_dtype", f"expected one of {ADAPTER_DTYPES}"))
    # On CPU, TRL's fused LM head scores every position in float32; ours scores the labelled ones only.
    trainer_class = LabelledPositionsSFTTrainer if use_cpu and config.training.labelled_positions_loss else SFTTrainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    expose_head_bias(trainer.model)
    keep_dtypes_on_resume(trainer)
    keep_4bit_layout_for_training(trainer.model)
    last = last_complete_checkpoint(out)
    cuda = torch.cuda.is_available() and not use_cpu
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    train_loss = None
    if stopped_at(last, trainer.args) is not None:  # killed after training had ended, before the adapter was written
        finish_from_checkpoint(trainer, last)
    else:
        output = trainer.train(resume_from_checkpoint=last)
        train_loss = float(output.training_loss) if output.training_loss is not None else None
    seconds = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated()) if cuda else None
    tokens = max((int(h["num_tokens"]) for h in trainer.state.log_history if "num_tokens" in h), default=None)

    adapter_dir = out / "adapter"
    main_process = trainer.is_world_process_zero()  # under DDP / FSDP only rank 0 writes results
    if main_process:
        trainer.model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    best = trainer.state.best_metric
    eval_losses = [h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h]
    result = SFTResult(
        output_dir=out,
        adapter_dir=adapter_dir,
        train_seconds=seconds,
        steps=int(trainer.state.global_step),
        train_loss=train_loss,
        best_eval_loss=float(best) if best is not None else (min(eval_losses) if eval_losses else None),
        trainable_params=int(trainable),
        resumed_from=last,
        train_tokens=tokens,
        peak_memory_bytes=peak,
    )
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    summary["world_size"] = int(trainer.args.world_size)
    summary["train_cases"] = len(train_cases)
    summary["val_cases"] = len(val_cases)
    if main_process:
        atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=2) + "\n")
    if config.merge and main_process:
        export_merged(config, adapter_dir, out / "merged")
    return result


def export_merged(config: SFTRunConfig, adapter_dir: Path, merged_dir: Path) -> Path:
    """Merge the adapter into an unquantised copy of the base (merging into NF4 weights would re-quantise them)."""
    from toolprior.modeling import load_model, load_tokenizer

    model = load_model(config.model.base, quantize="none", adapter=adapter_dir, dtype=config.model.dtype, device="cpu")
    merged = model.merge_and_unload()
    merged.save_pretrained(merged_dir)
    load_tokenizer(config.model.base).save_pretrained(merged_dir)
    return merged_dir
