"""SFT loss computed only where labels are, in the model's own dtype: the CPU path of `training.sft`.

TRL's SFTTrainer (1.x) computes the loss through a fused, chunked LM head. On CUDA it scores only the labelled
positions; elsewhere it scores every position, and in float32. With a 49k vocabulary on 2 CPU cores that head was
45% of a SmolLM2 training step (py-spy, bf16 LoRA, assistant-only loss: about a third of the positions carry
labels). This trainer runs the backbone, keeps the hidden states of the labelled positions, and applies the LM head
to those alone; the loss is the same token-mean cross-entropy TRL computes (summed over the labelled tokens,
divided by the labelled tokens of the whole accumulated batch), and it logs the same `mean_token_accuracy` and
`num_tokens`. Entropy is not logged.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

BACKBONE_INPUTS: tuple[str, ...] = ("input_ids", "attention_mask", "position_ids", "inputs_embeds")


def _causal_lm(model: Any) -> Any:
    """The transformers causal LM inside a PEFT wrapper (LoRA layers and trainable tokens are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@functools.cache
def labelled_positions_trainer() -> type:
    """The `SFTTrainer` subclass whose loss applies the LM head to the labelled positions only (see the module
    docstring); built on first use."""
    from trl import SFTTrainer  # lazy: TRL's trainers load transformers' Trainer (seconds); configs never need it

    class LabelledPositionsSFTTrainer(SFTTrainer):
        """`SFTTrainer` whose loss applies the LM head to the labelled positions only (see the module docstring)."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if self.model is None:  # set by __init__, or by train() from a model_init, before any loss
                raise RuntimeError("compute_loss ran before the trainer had a model")
            mode = "train" if self.model.training else "eval"
            lm = _causal_lm(model)
            backbone = getattr(lm, lm.base_model_prefix)
            hidden = backbone(**{k: inputs[k] for k in BACKBONE_INPUTS if k in inputs}, use_cache=False)
            labels = inputs["labels"][:, 1:]
            keep = labels != -100
            logits = lm.get_output_embeddings()(hidden.last_hidden_state[:, :-1][keep])
            targets = labels[keep]
            total = F.cross_entropy(logits.float(), targets, reduction="sum")
            count = keep.sum() if num_items_in_batch is None else num_items_in_batch
            loss = total / torch.as_tensor(count, device=total.device).clamp(min=1)
            with torch.no_grad():
                valid = max(int(targets.numel()), 1)
                accuracy = (logits.argmax(dim=-1) == targets).sum().item() / valid
            self._metrics[mode]["mean_token_accuracy"].append(accuracy)
            if mode == "train":
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, {"logits": logits}) if return_outputs else loss

    return LabelledPositionsSFTTrainer
