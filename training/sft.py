"""QLoRA SFT with TRL's SFTTrainer: NF4 base (bitsandbytes), LoRA (PEFT), assistant-only loss, NEFTune, early
stopping on validation loss, resume from the last checkpoint, adapter save and optional merged export.

    toolprior train sft experiments/configs/sft_organism.yaml --set training.learning_rate=1e-3

A run folder holds `checkpoint-*` (while training), `adapter/` (the result), `merged/` (if asked),
`train_summary.json` and `config.yaml` (the resolved config).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toolprior.actions import Action
from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_cases
from toolprior.cases import Case, GoldTurn, ToolCall
from toolprior.chat_template import gold_chat
from toolprior.config import dump_yaml
from toolprior.errors import InputError, Problem
from toolprior.modeling import load_model, load_tokenizer
from toolprior.output_format import render_turn
from toolprior.training.checkpoints import (
    keep_4bit_layout_for_training,
    keep_dtypes_on_resume,
    last_complete_checkpoint,
    train_or_finish,
)
from toolprior.training.labelled_loss import labelled_positions_trainer
from toolprior.training.lora import expose_head_bias, lora_config
from toolprior.training.preflight import preflight
from toolprior.training.preflight_report import check_or_raise
from toolprior.training.run_configs import SFTRunConfig
from toolprior.training.sections import ADAPTER_DTYPES


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
    messages, tools = gold_chat(case)
    resolved = resolved_turn(case) if clarify_arc else None
    if resolved is not None:
        messages += [m.to_dict() for m in case.followups]
        messages.append({"role": "assistant", "content": render_turn(resolved)})
    return {"messages": messages, "tools": json.dumps(tools, ensure_ascii=False)}


def resolved_turn(case: Case) -> Any:
    """The second assistant turn of a clarify case's arc: after the user's answer, a think that the ambiguity is
    resolved and the tool call the benchmark recorded (`meta.followup_call`); None when the case has no arc."""
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
    """The train and val cases of `config.data`, each with a gold turn, cut to max_train_cases / max_val_cases."""
    data_dir = Path(config.data.dir)
    train = read_cases(config.data.train_file or data_dir / "train.jsonl")
    val = read_cases(config.data.val_file or data_dir / "val.jsonl")
    for case in [*train, *val]:
        if case.gold is None:
            raise InputError(f"case {case.id}: SFT needs a gold turn on every training and validation case")
    if config.data.max_train_cases is not None:
        train = train[: config.data.max_train_cases]
    if config.data.max_val_cases is not None:
        val = val[: config.data.max_val_cases]
    return train, val


def sft_config(config: SFTRunConfig, use_cpu: bool, has_eval: bool) -> Any:
    """TRL's SFTConfig for `config` (`training.extra` on top); a combination TRL refuses is one InputError."""
    from trl import SFTConfig  # lazy: TRL loads transformers' Trainer (seconds); a config refusal never needs it

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
        raise InputError(Problem("<sft config>", None, "training", str(err).splitlines()[0])) from None


def train_sft(config: SFTRunConfig, progress: bool = True) -> SFTResult:
    """Run (or resume) one QLoRA SFT; refuses to start when the preflight finds the LoRA targets miss most of the
    model (unless `config.force`)."""
    # lazy: datasets, transformers' Trainer and TRL take seconds to import; loading or refusing a config needs none
    from datasets import Dataset

    # lazy: architectures a given transformers release may lack are imported where they are built
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

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
        from peft import get_peft_model  # lazy: PEFT is heavy

        model, peft_config = get_peft_model(model, peft_config, autocast_adapter_dtype=False), None
    elif config.lora.adapter_dtype not in ADAPTER_DTYPES:  # a config built in code skips the loader's check
        raise InputError(Problem("<sft config>", None, "lora.adapter_dtype", f"expected one of {ADAPTER_DTYPES}"))
    # On CPU, TRL's fused LM head scores every position in float32; ours scores the labelled ones only.
    trainer_class = labelled_positions_trainer() if use_cpu and config.training.labelled_positions_loss else SFTTrainer
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
    train_loss = train_or_finish(trainer, last)
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
    model = load_model(config.model.base, quantize="none", adapter=adapter_dir, dtype=config.model.dtype, device="cpu")
    merged = model.merge_and_unload()
    merged.save_pretrained(merged_dir)
    load_tokenizer(config.model.base).save_pretrained(merged_dir)
    return merged_dir
