"""The harness every method is scored with: batched generation over cases, a multi-turn loop with the tool
simulator and scripted users (up to 16 turns, with loop detection), and one Verdict per case.

The first assistant turn is the decision that is scored; later turns are kept in `Verdict.turns` and summarised in
`Verdict.meta` (turns taken, loop detected, whether a clarification was followed through with the right call).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from accelerate import PartialState
from accelerate.utils import gather_object

from toolprior.actions import Action
from toolprior.cases import Case
from toolprior.chat_template import case_to_chat
from toolprior.evals.generation import generate
from toolprior.evals.simulator import SimulatedUser, ToolSimulator, mode_for
from toolprior.evals.verdicts import verdict_for
from toolprior.generation_batch import SteeringFactory
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.output_format import ParsedTurn, parse_turn
from toolprior.verdict import Verdict

MAX_TURNS = 16


@dataclass(frozen=True)
class HarnessConfig:
    """How cases are run. `max_turns=1` scores the decision alone; more turns run the conversation on."""

    max_new_tokens: int = 160
    batch_size: int = 32
    max_turns: int = 1
    loop_repeats: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_turns <= MAX_TURNS:
            raise ValueError(f"max_turns must be between 1 and {MAX_TURNS}")


@dataclass
class _Conversation:
    case: Case
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    user: SimulatedUser
    first: ParsedTurn | None = None
    first_output: str = ""
    transcript: list[dict[str, Any]] = field(default_factory=list)
    calls_made: int = 0
    call_counts: Counter[str] = field(default_factory=Counter)
    loop: bool = False
    done: bool = False
    clarified: bool = False
    followed_through: bool | None = None


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


def _expected_followup_calls(case: Case) -> list[dict[str, Any]] | None:
    calls = case.meta.get("followup_tool_calls")
    return calls if isinstance(calls, list) else None


def _step(conv: _Conversation, output: str, simulator: ToolSimulator, loop_repeats: int) -> None:
    """Record one assistant turn and append what the world answers (tool results or the user's reply)."""
    parsed = parse_turn(output, conv.case.tools)
    if conv.first is None:
        conv.first, conv.first_output = parsed, output
    conv.messages.append({"role": "assistant", "content": output})
    conv.transcript.append(
        {"role": "assistant", "content": output, "action": parsed.action.value if parsed.action else None}
    )
    if parsed.action is Action.CALL_TOOL and parsed.tool_calls:
        expected = _expected_followup_calls(conv.case)
        if conv.clarified and conv.followed_through is None and expected is not None:
            want = {c.get("name") for c in expected}
            conv.followed_through = {c.name for c in parsed.tool_calls} == want
        for call in parsed.tool_calls:
            key = _call_key(call.name, call.arguments)
            conv.call_counts[key] += 1
            if conv.call_counts[key] >= loop_repeats:
                conv.loop, conv.done = True, True
                return
            result = simulator.respond(
                conv.case, call, mode_for(conv.case, conv.calls_made), call_index=conv.calls_made
            )
            conv.calls_made += 1
            message = {"role": "tool", "name": call.name, "content": result}
            conv.messages.append(message)
            conv.transcript.append(dict(message))
        return
    if parsed.action is Action.CLARIFY:
        conv.clarified = True
        reply = conv.user.reply(output)
        if reply is not None:
            message = {"role": "user", "content": reply}
            conv.messages.append(message)
            conv.transcript.append(dict(message))
            return
    conv.done = True


def evaluate(
    model: CausalLM,
    tokenizer: Tokenizer,
    cases: Sequence[Case],
    *,
    config: HarnessConfig | None = None,
    steer: SteeringFactory | None = None,
    progress: bool = True,
    desc: str = "eval",
) -> list[Verdict]:
    """Run every case through the model and return one Verdict per case, in order.

    Launched as several processes (`accelerate launch --num_processes N ...`), each process takes every N-th case
    and the verdicts are gathered back into case order on every process, so the result is the same as one
    process's (the simulator draws per case, not per run)."""
    world = distributed_world()
    if world is None:
        return _evaluate_here(model, tokenizer, cases, config=config, steer=steer, progress=progress, desc=desc)

    rank, size = world
    mine = list(cases)[rank::size]
    local = _evaluate_here(
        model, tokenizer, mine, config=config, steer=steer, progress=progress and rank == 0, desc=desc
    )
    gathered = gather_object([v.to_dict() for v in local])
    by_id = {d["id"]: Verdict.from_dict(d) for d in gathered}
    return [by_id[c.id] for c in cases]


def distributed_world() -> tuple[int, int] | None:
    """(rank, world size) when this process is one of several launched together (accelerate / torchrun set
    WORLD_SIZE); None for a single process."""

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None

    state = PartialState()
    return state.process_index, state.num_processes


def _evaluate_here(
    model: Any,
    tokenizer: Any,
    cases: Sequence[Case],
    *,
    config: HarnessConfig | None,
    steer: SteeringFactory | None,
    progress: bool,
    desc: str,
) -> list[Verdict]:
    config = config or HarnessConfig()
    simulator = ToolSimulator(seed=config.seed)
    conversations = []
    for case in cases:
        messages, tools = case_to_chat(case)
        conversations.append(_Conversation(case=case, messages=messages, tools=tools, user=SimulatedUser(case)))
    for turn in range(config.max_turns):
        active = [c for c in conversations if not c.done]
        if not active:
            break
        prompts = [
            tokenizer.apply_chat_template(c.messages, tools=c.tools or None, add_generation_prompt=True, tokenize=False)
            for c in active
        ]
        outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.batch_size,
            steer=steer,
            progress=progress,
            desc=f"{desc} turn {turn + 1}",
        )
        for conv, output in zip(active, outputs, strict=True):
            _step(conv, output, simulator, config.loop_repeats)
            if config.max_turns == 1:
                conv.done = True
    verdicts = []
    for conv in conversations:
        assert conv.first is not None
        meta: dict[str, Any] = {"turns": sum(1 for t in conv.transcript if t["role"] == "assistant")}
        case_meta = conv.case.meta if isinstance(conv.case.meta, dict) else {}
        if "ambiguity" in case_meta:  # scores split clarify by the kind of ambiguity (evals.scoring)
            meta["ambiguity"] = case_meta["ambiguity"]
        if config.max_turns > 1:
            meta["loop"] = conv.loop
            if conv.followed_through is not None:
                meta["followed_through"] = conv.followed_through
        verdicts.append(
            verdict_for(
                conv.case,
                conv.first,
                output=conv.first_output,
                turns=conv.transcript if config.max_turns > 1 else (),
                meta=meta,
            )
        )
    return verdicts
