"""Which checkpoint a resumed run starts from, and resuming it as the uninterrupted run would have gone on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from transformers import TrainerState

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` that a Trainer finished writing, or None.

    The Trainer writes `trainer_state.json` last (after weights, optimizer, scheduler and RNG state), so a
    checkpoint without it, or with one that does not parse, was cut short by a kill and is skipped; resuming from it
    would fail ("Can't find a valid checkpoint")."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True
    )
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None


def stopped_at(checkpoint: str | Path | None, args: Any) -> int | None:
    """The step at which the run of `checkpoint` had ended, when a run with TrainingArguments `args` would go no
    further from it; None while that run was still training, when `args` ask for more steps or epochs than it had
    planned (a rerun that extends a finished run), or without a checkpoint. Early stopping's end is final."""
    if checkpoint is None:
        return None
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    if not control.get("should_training_stop"):
        return None
    step, planned = int(state["global_step"]), int(state.get("max_steps") or 0)
    if step < planned:  # stopped early
        return step
    if args.max_steps > 0:
        return None if args.max_steps > planned else step
    return None if args.num_train_epochs > float(state.get("num_train_epochs") or 0) else step


def finish_from_checkpoint(trainer: Any, checkpoint: str | Path) -> None:
    """Put `trainer` where its run ended, from the checkpoint saved at its end (see `stopped_at`), training nothing.

    A run killed after its last checkpoint but before its adapter was written must not be resumed with `train`: the
    Trainer checks for the end after a step, never before one, so it would train one step past the end (past the
    last step, or past early stopping, up to the next evaluation). This does what the end of `train` does instead:
    the checkpoint's weights and state, then the best checkpoint's weights when the run loads the best at the end."""

    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint is not None:
        trainer._load_best_model()


def keep_dtypes_on_resume(trainer: Any) -> None:
    """Make `trainer` keep every parameter's dtype when it resumes from a checkpoint.

    TRL casts a 4-bit model's LoRA weights to bfloat16 when it builds the trainer. Resuming, the Trainer reloads the
    checkpoint's adapter with PEFT's `load_adapter`, which upcasts bfloat16 adapters to float32: a run killed and
    resumed trained the rest of the way in float32, slower and to a different adapter than the same run left alone.
    The checkpoint holds the weights in their own dtype, so casting them back is exact; the optimizer, built after
    this load, then restores its bfloat16 state as saved."""
    load = trainer._load_from_checkpoint

    def load_keeping_dtypes(resume_from_checkpoint: str, model: Any = None) -> None:
        target = trainer.model if model is None else model
        dtypes = {name: p.dtype for name, p in target.named_parameters()}
        load(resume_from_checkpoint, model)
        for name, param in target.named_parameters():
            if name in dtypes and param.dtype != dtypes[name]:
                param.data = param.data.to(dtypes[name])

    trainer._load_from_checkpoint = load_keeping_dtypes


def keep_4bit_layout_for_training(model: Any) -> None:
    """Keep bitsandbytes from repacking `model`'s 4-bit weights for its CPU inference kernel during training.

    On a CPU with AVX512-BF16, a 4-bit linear layer run in eval mode without gradients (the Trainer's validation
    loss) converts its weights, in place and for good, to another layout, and every training step after the first
    evaluation runs on that layout with other rounding. A run resumed from a checkpoint has not evaluated since it
    started, so it went on differently from the run it resumes (measured: every LoRA tensor differed after one
    step). With the conversion off, training and evaluation keep the layout the model was loaded with."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def train_or_finish(trainer: Any, last: str | None) -> float | None:
    """Train from `last` (a checkpoint, or None for a fresh run) and return the training loss; a run killed after
    its training had ended but before its adapter was written only restores that checkpoint (None: no loss)."""
    if last is not None and stopped_at(last, trainer.args) is not None:
        finish_from_checkpoint(trainer, last)
        return None
    output = trainer.train(resume_from_checkpoint=last)
    return float(output.training_loss) if output.training_loss is not None else None
