"""The machinery SimPO, DPO and adversarial SFT share (training.simpo, training.dpo, training.adv_sft): the
mined pairs as training rows, the SFT agent to continue from, the TrainingArguments common to the three, and the
run itself (`run_preference`).

All three continue from the SFT agent: the NF4 base with the SFT adapter loaded trainable
(`PeftModel.from_pretrained(..., is_trainable=True)` through `toolprior.modeling.load_model`), and train that same
adapter further; no second adapter, no merge (merging into NF4 weights would re-quantise them). The result is an
adapter folder that loads exactly like the SFT one. A run folder holds `checkpoint-*` (while training; a rerun
resumes from the last one), `adapter/`, `train_summary.json` and `config.yaml` (the resolved config).

Data. SimPO and DPO train on the same text rows (`preference_text_row`): the prompt rendered by the tokenizer's chat
template with the case's tools and the generation prompt, and each completion rendered by the same template and cut
after the end-of-turn token. Pre-rendering matters: CPOTrainer applies the chat template without the row's tools,
so conversational rows would silently lose the tool list the agent saw. Adversarial SFT uses conversational rows
with tools, exactly like SFT. A pair longer than `training.max_length` tokens is left out rather than truncated
(`fit_pairs`: truncation would cut the action block the pair is about); the ids left out are listed in
train_summary.json, and all three methods leave out the same ones at the same max_length.

Adapter precision. SFTTrainer and DPOTrainer cast the trainable LoRA weights of a 4-bit model to bfloat16 (the
QLoRA paper's advice). At preference learning rates (5e-7 in the case study) one AdamW step is below bfloat16's
resolution of a LoRA weight, so the update would be rounded away; the trainers here put the exact weights back
(float32 as loaded) after the trainer is built. CPOTrainer does not cast them.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_case_files
from toolprior.config import dump_yaml, to_plain
from toolprior.errors import InputError, Problem
from toolprior.modeling import load_model, load_tokenizer
from toolprior.training.checkpoints import keep_dtypes_on_resume, last_complete_checkpoint, train_or_finish
from toolprior.training.lora import expose_head_bias
from toolprior.training.pairs import Pair, check_no_leak, read_pairs
from toolprior.training.sections import PairsDataSection, PreferenceModelSection, PreferenceTrainingSection


@dataclass(frozen=True)
class PreferenceResult:
    method: str
    output_dir: Path
    adapter_dir: Path
    train_seconds: float
    pairs: int
    steps: int
    train_loss: float | None
    final_loss: float | None
    trainable_params: int
    resumed_from: str | None


def bad_setting(field_name: str, message: str) -> InputError:
    """One problem with the preference config's setting `field_name`."""
    return InputError(Problem("<preference config>", None, field_name, message))


def _common_prefix(*texts: str) -> str:
    first = texts[0]
    n = len(first)
    for other in texts[1:]:
        n = min(n, len(other))
        for i in range(n):
            if first[i] != other[i]:
                n = i
                break
    return first[:n]


def preference_text_row(pair: Pair, tokenizer: Any) -> dict[str, str]:
    """{"prompt", "chosen", "rejected"} as text: the prompt with its tools and the generation prompt, each completion
    as the chat template renders the assistant turn, cut right after the end-of-turn token (a trailing newline of the
    template is not trained on, as with SFT's assistant mask)."""
    tools = pair.tools or None
    prompt = tokenizer.apply_chat_template(pair.prompt, tools=tools, add_generation_prompt=True, tokenize=False)
    full_chosen = tokenizer.apply_chat_template(pair.prompt + pair.chosen, tools=tools, tokenize=False)
    full_rejected = tokenizer.apply_chat_template(pair.prompt + pair.rejected, tools=tools, tokenize=False)
    prefix = _common_prefix(prompt, full_chosen, full_rejected)
    eos = tokenizer.eos_token or ""

    def completion(full: str) -> str:
        text = full[len(prefix) :]
        stripped = text.rstrip()
        return stripped if eos and stripped.endswith(eos) else text

    return {"prompt": prefix, "chosen": completion(full_chosen), "rejected": completion(full_rejected)}


def fit_pairs(pairs: list[Pair], tokenizer: Any, max_length: int) -> tuple[list[Pair], list[Pair]]:
    """(kept, too_long): a pair is kept when prompt + chosen and prompt + rejected both fit in `max_length` tokens.

    Truncation is no option for these pairs: TRL cuts the completion's end, which is where the action block that
    the pair is about sits (and a prompt alone longer than `max_length` leaves an empty completion, whose average
    log-probability is NaN). All three methods drop the same pairs, so they still train on identical data."""
    kept: list[Pair] = []
    too_long: list[Pair] = []
    for pair in pairs:
        row = preference_text_row(pair, tokenizer)
        longest = max(
            len(tokenizer(row["prompt"] + row[side], add_special_tokens=False)["input_ids"])
            for side in ("chosen", "rejected")
        )
        # +2: the trainers may add a BOS / EOS token, and the SFT chat template a trailing newline
        (kept if longest + 2 <= max_length else too_long).append(pair)
    if not kept:
        raise InputError(
            Problem(
                "<preference config>",
                None,
                "training.max_length",
                f"all {len(pairs)} pairs are longer than {max_length} tokens",
            )
        )
    if too_long:
        print(f"{len(too_long)} of {len(pairs)} pairs are longer than max_length {max_length} tokens and are left out")
    return kept, too_long


def load_pairs_for_training(data: PairsDataSection) -> list[Pair]:
    """The pairs file, validated, checked against the held-out case files, cut to `max_pairs`, then focused
    (`focus_action`, `focus_share`)."""
    pairs = read_pairs(data.pairs_file)
    if data.eval_files:
        check_no_leak(pairs, read_case_files(data.eval_files), source=data.pairs_file)
    if data.max_pairs is not None:
        pairs = pairs[: data.max_pairs]
    if data.focus_action is not None and data.focus_share is not None:
        pairs = focused(pairs, data.focus_action, data.focus_share, source=data.pairs_file)
    return pairs


def focused(pairs: list[Pair], action: str, share: float, seed: int = 0, source: str = "<pairs>") -> list[Pair]:
    """Every pair expecting `action`, and a seeded sample of the others so that the former make `share` of the
    result (all the others when there are too few), in the file's order. No pair expecting `action`: InputError."""
    focus = [i for i, p in enumerate(pairs) if p.expected_action == action]
    if not focus:
        counts = ", ".join(f"{a} {n}" for a, n in Counter(p.expected_action for p in pairs).most_common())
        raise InputError(
            Problem(source, None, "data.focus_action", f"no pair expects {action} (the file has {counts})")
        )
    others = [i for i, p in enumerate(pairs) if p.expected_action != action]
    wanted = round(len(focus) * (1 - share) / share)
    kept = set(focus) | set(random.Random(seed).sample(others, min(wanted, len(others))))
    out = [p for i, p in enumerate(pairs) if i in kept]
    print(f"focus on {action}: {len(focus)} of its pairs and {len(out) - len(focus)} of {len(others)} others kept")
    return out


def load_policy(section: PreferenceModelSection) -> tuple[Any, Any]:
    """(model, tokenizer): the base (NF4 unless `quantize: none`) with the SFT adapter loaded trainable."""
    tokenizer = load_tokenizer(section.base, trust_remote_code=section.trust_remote_code)
    model = load_model(
        section.base,
        quantize=section.quantize,
        adapter=section.adapter,
        dtype=section.dtype,
        device=section.device,
        trust_remote_code=section.trust_remote_code,
        trainable_adapter=True,
    )
    return model, tokenizer


def use_cpu_for(section: PreferenceModelSection) -> bool:
    """Whether the run trains on the CPU: no CUDA, or `model.device: cpu`."""
    return not torch.cuda.is_available() or section.device == "cpu"


def trainer_args(
    output_dir: str, t: PreferenceTrainingSection, model: PreferenceModelSection, use_cpu: bool
) -> dict[str, Any]:
    """The TrainingArguments SimPO and DPO share, from the training section."""
    return dict(
        output_dir=output_dir,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        # transformers 5 takes the warmup ratio as a float in [0, 1) through warmup_steps
        warmup_steps=float(t.warmup_ratio),
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        max_length=t.max_length,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="no",
        gradient_checkpointing=(not use_cpu) if t.gradient_checkpointing is None else t.gradient_checkpointing,
        seed=t.seed,
        data_seed=t.seed,
        report_to=[],
        use_cpu=use_cpu,
        bf16=(model.dtype == "bfloat16") and not use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def build_trl_config(cls: Any, kwargs: dict[str, Any], extra: dict[str, Any], what: str) -> Any:
    """`cls(**kwargs, **extra)`, a TRL trainer config; a combination TRL refuses is one InputError."""
    kwargs = {**kwargs, **extra}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # TRL/transformers reject a combination: one line, not a traceback
        raise InputError(Problem(f"<{what} config>", None, "training", str(err).splitlines()[0])) from None


class KeepTrainableWeights:
    """Snapshot the trainable weights before a trainer is built and put them back (dtype and values) after, undoing
    TRL's bfloat16 cast of a 4-bit model's adapter (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def restore(self, model: Any) -> None:
        for name, param in model.named_parameters():
            if name in self.saved:
                param.data = self.saved[name].to(param.device)


# what may change between a run and its resumption: where it writes and logs, and how long it goes on
_RESUMABLE_CHANGES = {"output_dir", "max_steps", "num_train_epochs", "logging_steps", "save_steps", "eval_steps"}


def run_key(config: Any, pairs: list[Pair]) -> dict[str, Any]:
    """What decides a preference run's checkpoints: the resolved config but `_RESUMABLE_CHANGES`, and the ids of
    the pairs it trains on, in order."""
    resolved = to_plain(config)

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in _RESUMABLE_CHANGES}
        return node

    ids = hashlib.sha256("\n".join(p.id for p in pairs).encode()).hexdigest()
    return {"config": strip(resolved), "pair_ids_sha256": ids}


def _changed(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(old.keys() | new.keys()) for c in _changed(old.get(k), new.get(k), f"{path}.{k}")]
    return [path.lstrip(".")] if old != new else []


def prepare_run(output_dir: str, config: Any, pairs: list[Pair]) -> tuple[Path, str | None]:
    """The run folder (made, with the resolved config.yaml and `run_key.json`) and its last complete checkpoint, if
    any. A folder whose checkpoints were trained under another key is refused (one line naming what changed) before
    anything in it is rewritten: resumed, it would go on with other settings and report them as its own."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = last_complete_checkpoint(out)
    key = run_key(config, pairs)
    key_file = out / "run_key.json"
    if last is not None and key_file.is_file():
        before = json.loads(key_file.read_text(encoding="utf-8"))
        changed = _changed(before.get("config"), key["config"])
        changed += ["the pairs"] if before.get("pair_ids_sha256") != key["pair_ids_sha256"] else []
        if changed:
            raise InputError(
                Problem(
                    str(key_file),
                    None,
                    ", ".join(changed),
                    "this run's checkpoints were trained with other settings or pairs; use another output_dir",
                )
            )
    atomic_write_text(out / "config.yaml", dump_yaml(config))
    atomic_write_text(key_file, json.dumps(key, indent=2) + "\n")  # a run from before keys gets one now
    return out, last


def _earlier_train_seconds(out: Path) -> float:
    """The training seconds a finished run recorded before it was opened again (0 when it never finished): a study
    that reopens its finished runs must not report their cost as the second it took to find them done."""
    summary = out / "train_summary.json"
    return (
        float(json.loads(summary.read_text(encoding="utf-8")).get("train_seconds", 0.0)) if summary.is_file() else 0.0
    )


def run_preference(
    method: str, config: Any, max_length: int, settings: dict[str, Any], build: Any, row: Any
) -> PreferenceResult:
    """Shared by the three methods: pairs (checked, fitted to max_length), the SFT agent, the trainer `build(model,
    tokenizer, dataset)` makes, training with resume, the adapter and train_summary.json."""
    from datasets import Dataset  # lazy: datasets takes seconds to import; a config refusal never needs it

    pairs = load_pairs_for_training(config.data)
    out, last = prepare_run(config.output_dir, config, pairs)
    earlier = _earlier_train_seconds(out) if last is not None else 0.0
    model, tokenizer = load_policy(config.model)
    pairs, too_long = fit_pairs(pairs, tokenizer, max_length)
    dataset = Dataset.from_list([row(p, tokenizer) for p in pairs])
    keep = KeepTrainableWeights(model)
    trainer = build(model, tokenizer, dataset)
    # DPO's and SFTTrainer's fused LM head read the tied head's bias, which an SFT adapter's trainable tokens hide
    expose_head_bias(trainer.model)
    keep.restore(trainer.model)
    keep_dtypes_on_resume(trainer)
    start = time.perf_counter()
    train_loss = train_or_finish(trainer, last)
    seconds = earlier + time.perf_counter() - start

    adapter_dir = out / "adapter"
    model = trainer.model
    names = list(getattr(model, "peft_config", {}) or {})
    if "default" in names and len(names) > 1:  # DPO's frozen "ref" copy is not part of the result
        model.save_pretrained(adapter_dir, selected_adapters=["default"])
    else:
        model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    history = trainer.state.log_history
    logged = [h for h in history if "loss" in h]
    result = PreferenceResult(
        method=method,
        output_dir=out,
        adapter_dir=adapter_dir,
        train_seconds=seconds,
        pairs=len(pairs),
        steps=int(trainer.state.global_step),
        train_loss=train_loss,
        final_loss=float(logged[-1]["loss"]) if logged else train_loss,
        trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        resumed_from=last,
    )
    summary: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    summary.update(
        base=config.model.base,
        start_adapter=config.model.adapter,
        pairs_file=config.data.pairs_file,
        pairs_too_long=[p.id for p in too_long],
        settings=settings,
        data_selection={
            "focus_action": config.data.focus_action,
            "focus_share": config.data.focus_share,
            "max_pairs": config.data.max_pairs,
            "per_expected_action": dict(Counter(p.expected_action for p in pairs)),
        },
        final_metrics=logged[-1] if logged else {},
    )
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return result


__all__ = [
    "PreferenceResult",
    "fit_pairs",
    "load_pairs_for_training",
    "load_policy",
    "preference_text_row",
    "run_preference",
]
