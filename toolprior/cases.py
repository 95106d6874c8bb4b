"""The case schema: one evaluation or training case per JSONL line (see DESIGN.md, "The case schema").

These dataclasses hold already-validated data; `toolprior.case_io` validates raw JSON and builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolprior.actions import Action


@dataclass(frozen=True)
class ToolCall:
    """One tool invocation: a tool name and its JSON arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class Message:
    """A chat message. Assistant content is a full turn in the project's output format; tool content is the
    tool's result (usually JSON text) and `name` says which tool produced it."""

    role: str
    content: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class ToolSpec:
    """A tool the agent may call: name, description and a JSON-schema object for its parameters."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


@dataclass(frozen=True)
class GoldTurn:
    """The correct assistant turn: its reasoning, its action, and the action's payload.

    `content` is the text of a clarify / answer / escalate / refuse block; `tool_calls` is set for call_tool."""

    think: str
    action: Action
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "think": self.think,
            "action": self.action.value,
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
        }


@dataclass(frozen=True)
class Case:
    """One decision the agent must make, with its context, its tools and the right action."""

    id: str
    category: str
    split: str
    expected_action: Action
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    gold: GoldTurn | None = None
    followups: tuple[Message, ...] = ()
    acceptable: tuple[Action, ...] = ()
    twin: str | None = None
    tool_mode: str = "ok"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def acceptable_actions(self) -> tuple[Action, ...]:
        """Every action that scores as correct; defaults to the expected action alone."""
        return self.acceptable or (self.expected_action,)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools)

    @property
    def template(self) -> str:
        """The surface template this case was written from (probe cross-validation groups by it)."""
        return str(self.meta.get("template", self.id))

    def to_dict(self) -> dict[str, Any]:
        """The case as a JSON-ready dict with the schema's key order; optional keys appear only when set."""
        out: dict[str, Any] = {
            "id": self.id,
            "category": self.category,
            "split": self.split,
            "expected_action": self.expected_action.value,
            "messages": [m.to_dict() for m in self.messages],
            "tools": [t.to_dict() for t in self.tools],
        }
        if self.gold is not None:
            out["gold"] = self.gold.to_dict()
        if self.followups:
            out["followups"] = [m.to_dict() for m in self.followups]
        if self.acceptable:
            out["acceptable"] = [a.value for a in self.acceptable]
        if self.twin is not None:
            out["twin"] = self.twin
        if self.tool_mode != "ok":
            out["tool_mode"] = self.tool_mode
        out["meta"] = self.meta
        return out
