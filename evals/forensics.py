"""Forensics of an agent's turns: what the think block argues for, where it disagrees with the action, and which
tool-call argument values the agent invented.

The case study's signature is a think block that says "I should ask which shipment they mean" followed by a tool
call, often with made-up argument values (`subject_id="SUBJ-001"`). This module measures both.

Think classification
--------------------
A `ThinkJudge` maps a think block (and optionally its case) to the action it argues for, or None when it argues
for nothing clear. `RuleThinkJudge` (the default; its rules are in `toolprior.think_judge`, re-exported here)
reads cues, negation and modality; `ModelThinkJudge` asks a causal LM instead.

Hallucinated arguments
----------------------
`hallucinated_arguments(case, tool_calls)` lists argument values (strings and numbers, found recursively in
objects and lists) that appear nowhere in the case's context: the text of every message the agent saw (system,
user, earlier assistant and tool messages, and tool messages' names); followups are not context. Rules:

- Booleans and null are never flagged; nor is a value the tool's schema declares (any `enum` or `const` member,
  or a `default`, anywhere in that tool's parameter schema; case-insensitive); nor an empty string.
- Strings compare case-insensitively with whitespace collapsed, as whole tokens: "SHP-1030" matches "... SHP-1030)"
  but "SHP-103" does not. A multi-word string not found verbatim is still grounded when every word token in it
  appears in the context as a whole token (free text that re-orders the user's words); word tokens are runs of
  letters and digits joined by `-`, `_`, `.`, `@` or `/` ("SUBJ-001", "a.b@c.com" are one token each).
- Numbers match any number written in the context, numerically (`5 == 5.0`, "1,200" == 1200); so do strings that
  spell a number.
- Descriptions of the tools are not context: a value copied from a schema's example is still invented.
- Limits: free text the agent composes from new words (a message body) is flagged, and so is a value written
  differently from the context ("2024-05-01" for "May 1, 2024"); read the flagged paths before trusting a rate.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from toolprior.actions import ACTION_NAMES, Action
from toolprior.cases import Case, ToolCall, ToolSpec
from toolprior.evals.generation import model_device
from toolprior.evals.statistics import wilson_interval
from toolprior.output_format import THINK_CLOSE
from toolprior.think_judge import (  # noqa: F401  (re-exported: the judge moved to the core package)
    _ACTION_VERBS,
    _AGENT_RE,
    _BOUNDARY_RE,
    _BOUNDARY_WORDS_KEEP,
    _COMMIT_RE,
    _COMPILED,
    _CONCLUSION_START_RE,
    _HEDGE_RE,
    _NEGATOR_RE,
    _SENT_END_RE,
    _UNCERTAINTY_RE,
    _WORDS_BACK,
    CUES,
    MODALITY_WEIGHT,
    MODEL_JUDGE_OPTIONS,
    MODEL_JUDGE_PROMPT,
    Cue,
    CueMatch,
    RuleThinkJudge,
    ThinkAnalysis,
    ThinkJudge,
    _add_span,
    _last_words,
    _nearest,
    _normalize,
    _scope_start,
    split_sentences,
)
from toolprior.verdict import Verdict

DIGITS = 4
CALL_TOOL = Action.CALL_TOOL.value


class ModelThinkJudge:
    """A think judge that asks a causal LM (any Hugging Face causal LM, possibly not the agent) a multiple-choice
    question and reads its answer from the logits.

    The prompt (`MODEL_JUDGE_PROMPT`, optionally wrapped in the tokenizer's chat template with `chat=True`) lists
    the five actions and "none" and ends with "Answer:"; each option is the continuation `" " + name`.

    `readout`:
    - "next_token": one forward pass per think; the options are scored by the next-token logits of their first
      tokens (after the prompt). Needs those first tokens to differ (ValueError otherwise).
    - "sequence": each option is scored by the summed log-probability of all its tokens given the prompt
      (teacher forcing; six rows per think).
    - "auto" (default): "next_token" when the first tokens differ, else "sequence".
    The best-scoring option is the answer; "none" gives None, and so does a best option whose probability among
    the six (softmax of the scores) is below `min_prob`. Thinks longer than `max_think_tokens` keep their END (the
    conclusion is there). Batched with left padding and explicit position ids, so a think gets the same scores
    alone or in a batch.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        readout: str = "auto",
        chat: bool = False,
        max_think_tokens: int = 256,
        min_prob: float = 0.0,
        batch_size: int = 8,
        prompt: str = MODEL_JUDGE_PROMPT,
    ) -> None:
        if readout not in ("auto", "next_token", "sequence"):
            raise ValueError(f"readout must be 'auto', 'next_token' or 'sequence', got {readout!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.chat = chat
        self.max_think_tokens = max_think_tokens
        self.min_prob = min_prob
        self.batch_size = batch_size
        self.prompt = prompt
        self.option_ids = [self._encode(" " + name) for name in MODEL_JUDGE_OPTIONS]
        distinct = len({ids[0] for ids in self.option_ids}) == len(self.option_ids)
        if readout == "next_token" and not distinct:
            raise ValueError("the options' first tokens collide under this tokenizer; use readout='sequence'")
        self.readout = readout if readout != "auto" else ("next_token" if distinct else "sequence")

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, think: str) -> list[int]:
        """The token ids of the question about `think` (before any option)."""
        ids = self._encode(think)
        if len(ids) > self.max_think_tokens:
            think = self.tokenizer.decode(ids[-self.max_think_tokens :], skip_special_tokens=False)
        text = self.prompt.format(think=think.strip())
        if self.chat and getattr(self.tokenizer, "chat_template", None):
            head, _, tail = text.rpartition("\n")
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": head}], add_generation_prompt=True, tokenize=False
            )
            text = rendered + tail
        return self._encode(text)

    def __call__(self, think: str, case: Case | None = None) -> str | None:
        return self.batch([think])[0]

    def batch(self, thinks: Sequence[str], cases: Sequence[Case | None] | None = None) -> list[str | None]:
        """The verdicts of many thinks at once (`cases` are accepted for the protocol and not used)."""
        out: list[str | None] = []
        for scores in self.scores(thinks):
            if not scores:
                out.append(None)
                continue
            best = max(scores, key=lambda k: scores[k])
            probs = _softmax(scores)
            out.append(None if best == "none" or probs[best] < self.min_prob else best)
        return out

    def scores(self, thinks: Sequence[str]) -> list[dict[str, float]]:
        """Per think, {option: score} (log-probabilities; for "next_token" over the full vocabulary). An empty
        think gets {}."""

        device = model_device(self.model)
        results: list[dict[str, float]] = [{} for _ in thinks]
        todo = [i for i, t in enumerate(thinks) if t and t.strip()]
        prompts = {i: self.prompt_ids(thinks[i]) for i in todo}
        if self.readout == "next_token":
            rows = [(i, prompts[i]) for i in todo]
            firsts = [ids[0] for ids in self.option_ids]
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                logits = self._last_logits([ids for _, ids in chunk], device)
                logp = torch.log_softmax(logits.float(), dim=-1)
                for j, (i, _) in enumerate(chunk):
                    results[i] = {n: float(logp[j, t]) for n, t in zip(MODEL_JUDGE_OPTIONS, firsts, strict=True)}
            return results
        rows2 = [(i, k, prompts[i], self.option_ids[k]) for i in todo for k in range(len(MODEL_JUDGE_OPTIONS))]
        for start in range(0, len(rows2), self.batch_size * len(MODEL_JUDGE_OPTIONS)):
            chunk2 = rows2[start : start + self.batch_size * len(MODEL_JUDGE_OPTIONS)]
            seqs = [p + o for _, _, p, o in chunk2]
            logits = self._all_logits(seqs, device)
            logp = torch.log_softmax(logits.float(), dim=-1)
            width = logp.shape[1]
            for j, (i, k, _, opt) in enumerate(chunk2):
                n = len(opt)
                # Left padding: the option's tokens are the last n columns; each is predicted one column earlier.
                pos = torch.arange(width - n - 1, width - 1, device=logp.device)
                tok = torch.tensor(opt, device=logp.device)
                results[i][MODEL_JUDGE_OPTIONS[k]] = float(logp[j, pos, tok].sum())
        return results

    def _forward(self, seqs: Sequence[Sequence[int]], device: Any) -> Any:

        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[r, width - len(s) :] = 1
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        ids, mask, position_ids = ids.to(device), mask.to(device), position_ids.to(device)
        with torch.inference_mode():
            try:
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
            except TypeError:  # a model whose forward takes no position_ids
                out = self.model(input_ids=ids, attention_mask=mask, use_cache=False)
        return out.logits

    def _last_logits(self, seqs: Sequence[Sequence[int]], device: Any) -> Any:
        return self._forward(seqs, device)[:, -1, :]

    def _all_logits(self, seqs: Sequence[Sequence[int]], device: Any) -> Any:
        return self._forward(seqs, device)


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exps.values())
    return {k: v / total for k, v in exps.items()}


# ------------------------------------------------------------------------------------------- annotate and mismatch


def _case_index(cases: Iterable[Case] | Mapping[str, Case] | None) -> dict[str, Case]:
    if cases is None:
        return {}
    if isinstance(cases, Mapping):
        return dict(cases)
    return {c.id: c for c in cases}


def annotate_think(
    verdicts: Sequence[Verdict],
    judge: ThinkJudge | None = None,
    cases: Iterable[Case] | Mapping[str, Case] | None = None,
    *,
    inplace: bool = False,
) -> list[Verdict]:
    """Fill `think_argues` with `judge`'s verdict on each verdict's think (RuleThinkJudge by default; None where a
    verdict has no think). Returns new Verdicts (dataclasses.replace), or with `inplace=True` sets the field on the
    given ones and returns them. `cases` (by id) are handed to the judge when given. A judge with a
    `batch(thinks, cases)` method (ModelThinkJudge) is called once for all thinks."""
    judge = judge if judge is not None else RuleThinkJudge()
    index = _case_index(cases)
    with_think = [i for i, v in enumerate(verdicts) if v.think is not None and v.think.strip()]
    argued: dict[int, str | None] = {}
    batch = getattr(judge, "batch", None)
    if callable(batch):
        got = batch([verdicts[i].think or "" for i in with_think], [index.get(verdicts[i].id) for i in with_think])
        argued = dict(zip(with_think, got, strict=True))
    else:
        argued = {i: judge(verdicts[i].think or "", index.get(verdicts[i].id)) for i in with_think}
    out: list[Verdict] = []
    for i, v in enumerate(verdicts):
        value = argued.get(i)
        if inplace:
            v.think_argues = value
            out.append(v)
        else:
            out.append(dataclasses.replace(v, think_argues=value))
    return out


def _after_think(output: str) -> str:
    i = output.find(THINK_CLOSE)
    return output[i + len(THINK_CLOSE) :] if i != -1 else output


def mismatch_examples(
    verdicts: Iterable[Verdict], k: int = 5, judge: RuleThinkJudge | None = None
) -> list[dict[str, Any]]:
    """The `k` clearest cases of a think that argues for a non-tool action followed by a tool call.

    Candidates: `think_argues` set (run `annotate_think` first) and not call_tool, `predicted` call_tool. Ordered
    by: the think argued for the expected action first (the reasoning was right, the action wrong: the case
    study's pattern); then by the rule judge's margin on the think (how clearly it argued), larger first; then
    shorter thinks (easier to read); then id. Each example: id, category, expected, think_argues, predicted,
    margin, conclusion (the deciding sentence), think, action (the text after `</think>`), tool_calls."""
    judge = judge if judge is not None else RuleThinkJudge()
    rows = []
    for v in verdicts:
        if v.think_argues is None or v.think_argues == CALL_TOOL or v.predicted != CALL_TOOL:
            continue
        think = v.think or ""
        analysis = judge.analyze(think)
        margin = analysis.margin if analysis.action == v.think_argues else 0.0
        conclusion = ""
        if analysis.sentence is not None:
            s0, s1 = analysis.sentences[analysis.sentence]
            conclusion = _normalize(think)[s0:s1]
        rows.append(
            (
                (v.think_argues != v.expected, -margin, len(think), v.id),
                {
                    "id": v.id,
                    "category": v.category,
                    "expected": v.expected,
                    "think_argues": v.think_argues,
                    "predicted": v.predicted,
                    "margin": round(margin, DIGITS),
                    "conclusion": conclusion,
                    "think": think,
                    "action": _after_think(v.output).strip(),
                    "tool_calls": list(v.tool_calls),
                },
            )
        )
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows[: max(k, 0)]]


def _rate_block(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(k, n)
    return {"n": n, "k": k, "rate": round(k / n, DIGITS) if n else None, "ci95": [round(lo, DIGITS), round(hi, DIGITS)]}


def mismatch_table(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Any]]:
    """Per action the think argued for (ACTION_NAMES order): how many verdicts (n), how many then called a tool
    (k), the rate and its Wilson 95% interval. For call_tool the rate is the share that did call a tool."""
    groups: dict[str, list[Verdict]] = {}
    for v in verdicts:
        if v.think_argues is not None:
            groups.setdefault(v.think_argues, []).append(v)
    order = [a for a in ACTION_NAMES if a in groups] + sorted(set(groups) - set(ACTION_NAMES))
    return {a: _rate_block(sum(1 for v in groups[a] if v.predicted == CALL_TOOL), len(groups[a])) for a in order}


# ------------------------------------------------------------------------------------------ hallucinated arguments

_TOKEN_CHARS = r"0-9a-z"
_WORD_RE = re.compile(r"[0-9a-z]+(?:[-_.@/][0-9a-z]+)*")
_NUMBER_RE = re.compile(r"(?<![0-9a-z.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?")


def _fold(text: str) -> str:
    return " ".join(_normalize(text).casefold().split())


def case_context(case: Case) -> str:
    """The text the agent saw before its turn: every message's content (and tool messages' names), joined."""
    parts: list[str] = []
    for m in case.messages:
        if m.name:
            parts.append(m.name)
        parts.append(m.content)
    return "\n".join(parts)


def _schema_values(schema: Any, out: set[str]) -> None:
    """Every enum / const / default value anywhere in a JSON schema, folded to strings."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "enum" and isinstance(value, list):
                out.update(_fold(str(v)) for v in value if not isinstance(v, (dict, list)))
            elif key in ("const", "default") and not isinstance(value, (dict, list)):
                out.add(_fold(str(value)))
            else:
                _schema_values(value, out)
    elif isinstance(schema, list):
        for item in schema:
            _schema_values(item, out)


def _leaves(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


class _Context:
    def __init__(self, text: str) -> None:
        self.text = _fold(text)
        self.words = set(_WORD_RE.findall(self.text))
        self.numbers: list[float] = []
        for m in _NUMBER_RE.finditer(self.text):
            try:
                self.numbers.append(float(m.group(0).replace(",", "")))
            except ValueError:
                continue

    def has_number(self, x: float) -> bool:
        return any(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) for y in self.numbers)

    def has_string(self, value: str) -> bool:
        folded = _fold(value)
        if not folded:
            return True
        pattern = rf"(?<![{_TOKEN_CHARS}]){re.escape(folded)}(?![{_TOKEN_CHARS}])"
        if re.search(pattern, self.text):
            return True
        words = _WORD_RE.findall(folded)
        if len(words) > 1 and all(w in self.words for w in words):
            return True
        number = _spelled_number(folded)
        return number is not None and self.has_number(number)


def _spelled_number(text: str) -> float | None:
    try:
        x = float(text.replace(",", ""))
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _tool_params(tools: Sequence[ToolSpec], name: str) -> Any:
    for t in tools:
        if t.name == name:
            return t.parameters
    return None


def _as_call(call: ToolCall | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(call, ToolCall):
        return call.name, call.arguments
    return str(call.get("name", "")), call.get("arguments", {})


def hallucinated_arguments(case: Case, tool_calls: Sequence[ToolCall | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Argument values of `tool_calls` (ToolCalls or {"name", "arguments"} dicts) that the case's context does not
    contain (rules in the module docstring). One dict per invented value: call (0-based index), tool, path
    ("subject_id", "items[0].sku"), value."""
    ctx = _Context(case_context(case))
    out: list[dict[str, Any]] = []
    for index, call in enumerate(tool_calls):
        name, arguments = _as_call(call)
        declared: set[str] = set()
        _schema_values(_tool_params(case.tools, name), declared)
        for path, value in _leaves(arguments, ""):
            if value is None or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                if not math.isfinite(float(value)) or _fold(str(value)) in declared or ctx.has_number(float(value)):
                    continue
            elif isinstance(value, str):
                if _fold(value) in declared or ctx.has_string(value):
                    continue
            else:
                continue
            out.append({"call": index, "tool": name, "path": path, "value": value})
    return out


def hallucination_rate(cases: Iterable[Case] | Mapping[str, Case], verdicts: Iterable[Verdict]) -> dict[str, Any]:
    """Among verdicts that predict call_tool with at least one decoded call: the share whose calls hold at least
    one invented argument value. Returns {n, k, rate, ci95, per_expected: {action: {n, k, rate, ci95}}}
    (expected actions in ACTION_NAMES order; Wilson 95% intervals). ValueError when a verdict's id is not among
    `cases`."""
    index = _case_index(cases)
    vs = [v for v in verdicts if v.predicted == CALL_TOOL and v.tool_calls]
    missing = sorted({v.id for v in vs if v.id not in index})
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise ValueError(f"verdicts name cases that were not given: {shown}")
    flags: dict[str, list[bool]] = {}
    all_flags: list[bool] = []
    for v in vs:
        invented = bool(hallucinated_arguments(index[v.id], v.tool_calls))
        all_flags.append(invented)
        flags.setdefault(v.expected, []).append(invented)
    order = [a for a in ACTION_NAMES if a in flags] + sorted(set(flags) - set(ACTION_NAMES))
    block = _rate_block(sum(all_flags), len(all_flags))
    block["per_expected"] = {a: _rate_block(sum(flags[a]), len(flags[a])) for a in order}
    return block


__all__ = [
    "CUES",
    "MODEL_JUDGE_OPTIONS",
    "MODEL_JUDGE_PROMPT",
    "Cue",
    "CueMatch",
    "ModelThinkJudge",
    "RuleThinkJudge",
    "ThinkAnalysis",
    "ThinkJudge",
    "annotate_think",
    "case_context",
    "hallucinated_arguments",
    "hallucination_rate",
    "mismatch_examples",
    "mismatch_table",
    "split_sentences",
]
