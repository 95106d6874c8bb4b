"""A draft case (what a kind builder produces before QA and id assignment) and the registry of reusable user texts.

The registry is how implicit ambiguity stays honest: every user text that a call_tool case resolved from context
(exactly one matching entity) is recorded, and implicit clarify cases reuse those very texts with two or more
matching entities in the context. The label then depends on the context alone, never on the words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Case, GoldTurn, Message, ToolSpec


@dataclass
class Draft:
    """One generated case before it has an id. `raw` is the assistant turn as the generator wrote it (QA parses it)."""

    category: str
    kind: str
    action: Action
    messages: list[Message]
    tools: list[ToolSpec]
    gold: GoldTurn
    domain: str
    schema: str
    template: str
    think_ids: list[str]
    ambiguity: str = "none"
    difficulty: str = "medium"
    tool_mode: str = "ok"
    followups: list[Message] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    twin_role: str | None = None
    pair: int | None = None  # twin pair number within a split; both twins carry it
    registers: tuple[str, dict[str, Any]] | None = None  # (family, recipe) recorded once this draft passes QA
    raw: str = ""

    def to_case(self, case_id: str, split: str, twin: str | None = None) -> Case:
        meta: dict[str, Any] = {
            "difficulty": self.difficulty,
            "schema": self.schema,
            "ambiguity": self.ambiguity,
            "template": self.template,
            "domain": self.domain,
            "kind": self.kind,
            "think_template": "+".join(self.think_ids),
        }
        if self.twin_role is not None:
            meta["twin_role"] = self.twin_role
        meta.update(self.meta)
        return Case(
            id=case_id,
            category=self.category,
            split=split,
            expected_action=self.action,
            messages=tuple(self.messages),
            tools=tuple(self.tools),
            gold=self.gold,
            followups=tuple(self.followups),
            twin=twin,
            tool_mode=self.tool_mode,
            meta=meta,
        )


class Registry:
    """User texts that resolved to a call with exactly one candidate, by family ("request", "reply_attr", ...).

    One registry serves a whole split family (train, val, mine and eval share one; eval_novel has its own), so an
    eval case may reuse a text first seen in train: that is the point of the case study's signature."""

    def __init__(self) -> None:
        self._entries: dict[str, list[dict[str, Any]]] = {}
        self._seen: dict[str, set[str]] = {}

    def add(self, family: str, recipe: dict[str, Any]) -> None:
        seen = self._seen.setdefault(family, set())
        if recipe["text"] not in seen:  # the same text twice adds nothing but weight
            seen.add(recipe["text"])
            self._entries.setdefault(family, []).append(recipe)

    def pick(self, rng: random.Random, family: str) -> dict[str, Any] | None:
        entries = self._entries.get(family, [])
        return rng.choice(entries) if entries else None
