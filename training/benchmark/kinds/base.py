"""What every kind builder shares: the build context, target resolution and draft assembly."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from toolprior.actions import Action
from toolprior.cases import GoldTurn, Message, ToolCall, ToolSpec
from toolprior.output_format import render_turn
from toolprior.training.benchmark.domains import Domain, domains_for
from toolprior.training.benchmark.draft import Draft, Registry
from toolprior.training.benchmark.phrasings import Phrasings, fill, phrasings_for
from toolprior.training.benchmark.scene import (
    NUMBER_WORDS,
    Entity,
    Rendered,
    Scene,
    SystemSpec,
    Utterance,
    cands_and,
    cands_or,
)


@dataclass
class KindContext:
    """Where a kind builder draws from: one random stream, a schema family, the category, the shared registry."""

    rng: random.Random
    schema: str
    category: str
    registry: Registry

    @property
    def domains(self) -> tuple[Domain, ...]:
        return domains_for(self.schema)

    @property
    def phrasings(self) -> Phrasings:
        return phrasings_for(self.schema)

    def scene(self, require: Callable[[Domain], bool] | None = None, domain: str | None = None) -> Scene:
        pool = [d for d in self.domains if (require is None or require(d)) and (domain is None or d.key == domain)]
        if not pool:
            raise LookupError(f"no {self.schema} domain fits")
        return Scene(self.rng, self.rng.choice(pool), self.phrasings)


@dataclass
class Target:
    """How a request's target entity is determined, and what the context lists."""

    mode: str  # id | ctx | desc | hedged
    targets: list[Entity]
    listed: list[Entity]
    ref: str
    tail: str | None  # the hedge sentence of `hedged`
    rd: str = ""  # the description reference of `desc` and `hedged`

    @property
    def part(self) -> str:
        return f"call_{self.mode}"

    def slots(self) -> dict[str, Any]:
        t = self.targets[0]
        return {
            "id": t.id,
            "desc": t.desc,
            "ref": self.ref,
            "rd": self.rd,
            "n": NUMBER_WORDS.get(len(self.listed), str(len(self.listed))),
            "ids": " and ".join(e.id for e in self.targets),
        }


def resolve_target(sc: Scene, mode: str, *, n_targets: int = 1) -> Target:
    """Entities and the user's reference for a call whose target the request determines."""
    rng = sc.rng
    if mode == "id":
        targets = sc.entities(n_targets)
        others = sc.entities(rng.choice((0, 1, 1, 2)), avoid=targets)
        listed = targets + others if rng.random() < 0.85 else []
        rng.shuffle(listed)
        return Target("id", targets, listed, " and ".join(e.id for e in targets), None)
    if mode == "ctx":
        targets = sc.entities(1)
        return Target("ctx", targets, list(targets), sc.implicit_ref(), None)
    targets = sc.entities(1)
    listed = targets + sc.entities(rng.choice((1, 1, 2)), avoid=targets)
    rng.shuffle(listed)
    rd = sc.desc_ref(targets[0])
    if mode == "desc":
        return Target("desc", targets, listed, rd, None, rd)
    hedge = sc.rng.choice(sc.p.hedged)
    return Target("hedged", targets, listed, sc.implicit_ref(), fill(hedge, rd=rd), rd)


def pick_mode(rng: random.Random, weights: dict[str, float] | None = None) -> str:
    w = weights or {"id": 0.4, "ctx": 0.35, "desc": 0.15, "hedged": 0.1}
    return rng.choices(list(w), weights=list(w.values()))[0]


def assistant_turn(think: str, action: Action, content: str = "", calls: Sequence[ToolCall] = ()) -> Message:
    """An earlier assistant turn in the history, in the project's output format."""
    return Message("assistant", render_turn(GoldTurn(think, action, content, tuple(calls))))


def cand_slots(entities: Sequence[Entity]) -> dict[str, Any]:
    n = len(entities)
    word = NUMBER_WORDS.get(n, str(n))
    return {"cands": cands_and(entities), "cands_or": cands_or(entities), "n": word, "n_cap": word.capitalize()}


def call_slots(calls: Sequence[ToolCall], id_arg: str) -> dict[str, Any]:
    tools = list(dict.fromkeys(c.name for c in calls))
    args = list(dict.fromkeys(str(c.arguments.get(id_arg, next(iter(c.arguments.values()), ""))) for c in calls))
    return {"tool": " and ".join(tools), "args": " and ".join(args)}


class SceneArgs(TypedDict):
    """The `make_draft` keyword arguments that the branches of one builder share, passed as `**common`."""

    system: SystemSpec
    listed: Sequence[Entity]
    user: Utterance
    tools: Sequence[ToolSpec]
    history: Sequence[Message]


def make_draft(
    kc: KindContext,
    sc: Scene,
    *,
    kind: str,
    action: Action,
    system: SystemSpec,
    listed: Sequence[Entity],
    user: Utterance,
    tools: Sequence[ToolSpec],
    think: Rendered,
    content: Rendered | None = None,
    calls: Sequence[ToolCall] = (),
    history: Sequence[Message] = (),
    ambiguity: str = "none",
    difficulty: str = "medium",
    tool_mode: str = "ok",
    followups: Sequence[Message] = (),
    meta: dict[str, Any] | None = None,
    registers: tuple[str, dict[str, Any]] | None = None,
    user_first: bool = False,
) -> Draft:
    """Assemble a draft. The user message closes the prompt unless `user_first`: then the history (the agent's
    calls and the tools' results since that message) follows it and the decision comes after the last result."""
    gold = GoldTurn(think.text, action, content.text if content is not None else "", tuple(calls))
    turns = [Message("user", user.text), *history] if user_first else [*history, Message("user", user.text)]
    messages = [Message("system", system.render(listed)), *turns]
    return Draft(
        category=kc.category,
        kind=kind,
        action=action,
        messages=messages,
        tools=list(tools),
        gold=gold,
        domain=sc.d.key,
        schema=kc.schema,
        template=user.template,
        think_ids=think.ids,
        ambiguity=ambiguity,
        difficulty=difficulty,
        tool_mode=tool_mode,
        followups=list(followups),
        meta={**({"content_template": content.ids[0]} if content is not None else {}), **(meta or {})},
        registers=registers,
        raw=render_turn(gold),
    )
