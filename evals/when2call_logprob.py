"""When2Call's own scoring: each record's candidate answers (`answers`: one per label: tool_call,
request_for_info, cannot_answer, direct) scored by the model's length-normalised log-probability after the prompt;
the most likely candidate is the model's choice, and the choices get When2Call's metrics (macro F1, accuracy, the
tool-hallucination rate: `evals.external_metrics.when2call_metrics`). This is the paper's multiple-choice protocol
(arXiv:2504.18851, run there through lm-evaluation-harness), which needs no parsing of free text and so places a
model that does not speak the project's format (the base SmolLM2) beside one that does.

Each candidate is written as the project's action block (`<tool_call>{json}</tool_call>`, `<clarify>`,
`<refuse>`, `<answer>`), so the organism is scored in the format it was trained on and the base in the format its
system prompt describes. Two protocols:

- `answer_only`: the candidate right after the generation prompt, as in the paper (no reasoning first).
- `own_think`: the candidate after the model's own greedy think (`<think>...</think>`, at most `max_think_tokens`
  tokens). A model that writes no closed think within that budget gets an empty one (`<think></think>`), counted
  in `no_think`. This reads the decision where the organism makes it: after its think.

Normalisation is per token (the mean log-probability of the candidate's tokens).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from toolprior.actions import ACTION_TAGS, Action
from toolprior.cases import Case, ToolCall
from toolprior.chat_template import render_prompt
from toolprior.evals.candidate_choice import CandidateChoice
from toolprior.evals.continuation_logprob import continuation_logprobs
from toolprior.evals.external_metrics import WHEN2CALL_LABELS, when2call_metrics
from toolprior.evals.generation import generate
from toolprior.importers.when2call import LABEL_ACTIONS
from toolprior.output_format import THINK_CLOSE, THINK_OPEN, render_tool_call

PROTOCOLS: tuple[str, ...] = ("answer_only", "own_think")


def candidate_blocks(case: Case) -> dict[str, str]:
    """The case's When2Call candidates (`meta.answers`) as action blocks, in WHEN2CALL_LABELS order. A tool_call
    candidate whose JSON does not decode to {"name", "arguments"} is wrapped as it is."""
    answers = (case.meta or {}).get("answers")
    if not isinstance(answers, dict) or not answers:
        raise ValueError(f"case {case.id!r} has no When2Call candidate answers (meta.answers)")
    blocks: dict[str, str] = {}
    for label in WHEN2CALL_LABELS:
        if label not in answers:
            continue
        text = str(answers[label])
        action = LABEL_ACTIONS[label]
        if action is Action.CALL_TOOL:
            blocks[label] = _tool_call_block(text)
        else:
            tag = ACTION_TAGS[action]
            blocks[label] = f"<{tag}>{text}</{tag}>"
    return blocks


def _tool_call_block(text: str) -> str:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("name"), str) and isinstance(obj.get("arguments", {}), dict):
        return render_tool_call(ToolCall(name=obj["name"], arguments=obj.get("arguments", {})))
    return f"<tool_call>{text}</tool_call>"


def own_thinks(
    model: Any, tokenizer: Any, cases: Sequence[Case], *, max_think_tokens: int = 96, batch_size: int = 32
) -> list[str]:
    """Each case's greedy think, `<think>...</think>`, cut at its first `</think>`; "" where the model wrote no
    closed think within the budget (the caller then supplies an empty one)."""
    prompts = [render_prompt(tokenizer, c) for c in cases]
    outputs = generate(model, tokenizer, prompts, max_new_tokens=max_think_tokens, batch_size=batch_size)
    thinks = []
    for out in outputs:
        text = out.lstrip()
        end = text.find(THINK_CLOSE)
        thinks.append(text[: end + len(THINK_CLOSE)] if text.startswith(THINK_OPEN) and end >= 0 else "")
    return thinks


def choose_candidates(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    *,
    protocol: str = "answer_only",
    max_think_tokens: int = 96,
    batch_size: int = 16,
) -> list[CandidateChoice]:
    """The model's choice among each case's candidates under `protocol` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if protocol == "own_think":
        thinks = own_thinks(model, tokenizer, cases, max_think_tokens=max_think_tokens, batch_size=2 * batch_size)
        prefixes = [t or THINK_OPEN + THINK_CLOSE for t in thinks]
    else:
        prefixes = [""] * len(cases)
    prompts, continuations, owners = [], [], []
    blocks_of = [candidate_blocks(c) for c in cases]
    for i, (case, prefix, blocks) in enumerate(zip(cases, prefixes, blocks_of, strict=True)):
        prompt = render_prompt(tokenizer, case) + prefix
        for label, block in blocks.items():
            prompts.append(prompt)
            continuations.append(block)
            owners.append((i, label))
    scores = continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=batch_size)
    by_case: list[dict[str, float]] = [{} for _ in cases]
    for (i, label), score in zip(owners, scores, strict=True):
        by_case[i][label] = score.mean
    choices = []
    for case, prefix, means in zip(cases, prefixes, by_case, strict=True):
        label = max(means, key=lambda lab: (means[lab], -WHEN2CALL_LABELS.index(lab)))
        choices.append(
            CandidateChoice(
                case_id=case.id, label=label, predicted=LABEL_ACTIONS[label].value, scores=means, prefix=prefix
            )
        )
    return choices


def when2call_logprob(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    *,
    protocols: Sequence[str] = PROTOCOLS,
    max_think_tokens: int = 96,
    batch_size: int = 16,
) -> dict[str, Any]:
    """When2Call's metrics under each protocol, with every case's choice: {protocol: {"metrics", "no_think",
    "choices"}}."""
    out: dict[str, Any] = {}
    for protocol in protocols:
        choices = choose_candidates(
            model, tokenizer, cases, protocol=protocol, max_think_tokens=max_think_tokens, batch_size=batch_size
        )
        out[protocol] = {
            "metrics": when2call_metrics(zip(cases, choices, strict=True)),
            "no_think": sum(c.prefix == THINK_OPEN + THINK_CLOSE for c in choices) if protocol == "own_think" else 0,
            "choices": [c.to_dict() for c in choices],
        }
    return out
