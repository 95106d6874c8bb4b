"""Log-probability of a continuation given its prompt, batched: the scoring behind multiple-choice evaluations
such as When2Call's (each candidate answer scored by the model, the most likely one taken as its choice).

The prompt and the continuation are tokenized apart and concatenated, as lm-evaluation-harness does, so a
continuation's tokens do not depend on where the prompt happens to end. Rows are left-padded, with position ids
counted from each row's first real token, so every row's continuation ends at the batch's last position and the LM
head runs on the last (longest continuation + 1) positions only (`logits_to_keep`): on a 49k-word vocabulary the
full logits of a batch of long tool prompts are gigabytes, and most of the compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from toolprior.evals.generation import model_device


@dataclass(frozen=True)
class ContinuationScore:
    """The summed log-probability of a continuation's tokens and how many there are."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Length-normalised: the mean log-probability per token."""
        return self.logprob / self.tokens


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.inference_mode()
def continuation_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> list[ContinuationScore]:
    """The score of `continuations[i]` after `prompts[i]`, for every i, in order. Prompts carry their chat template's
    special tokens already; a continuation must encode to at least one token."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    rows = []
    for i, (prompt, continuation) in enumerate(zip(prompts, continuations, strict=True)):
        head, tail = _ids(tokenizer, prompt), _ids(tokenizer, continuation)
        if not head or not tail:
            raise ValueError(f"row {i}: the prompt and the continuation must each encode to at least one token")
        rows.append((head, tail))
    device = model_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(rows)), key=lambda i: -(len(rows[i][0]) + len(rows[i][1])))  # less padding
    scores: list[ContinuationScore | None] = [None] * len(rows)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="logprob", disable=not progress, total=len(starts)):
        batch = order[start : start + batch_size]
        seqs = [rows[i][0] + rows[i][1] for i in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, seq in enumerate(seqs):
            ids[j, width - len(seq) :] = torch.tensor(seq)
            mask[j, width - len(seq) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        keep = max(len(rows[i][1]) for i in batch) + 1
        inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}
        logits = model(**inputs, logits_to_keep=keep).logits.float()
        if logits.shape[1] != keep:  # a model without logits_to_keep: every position came back
            logits = logits[:, -keep:]
        logp = torch.log_softmax(logits, dim=-1)
        for j, i in enumerate(batch):
            tail = rows[i][1]
            # kept index keep-1 is the last position; the token at kept index q is predicted by the logits at q - 1
            at = torch.arange(keep - len(tail) - 1, keep - 1, device=logp.device)
            total = logp[j, at, torch.tensor(tail, device=logp.device)].sum().item()
            scores[i] = ContinuationScore(logprob=total, tokens=len(tail))
    return [s for s in scores if s is not None]
