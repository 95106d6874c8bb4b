"""What an enterprise domain is made of: its entities, tools (JSON-schema parameters), intents, policies and scripts.

A domain is plain data. Builders in `training.benchmark.kinds` combine it with surface phrasings into cases; the data
here only says what is true in the domain (which tool records a receipt, what the refund limit is, who handles a
legal threat), never how a case is labelled.

Text fields use `str.format` slots: `{ref}` (how the user refers to the entity), `{id}`, `{desc}`, `{noun}`, and
intent-specific argument slots such as `{details}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolprior.cases import ToolSpec


def tool(name: str, description: str, props: dict[str, dict[str, Any]], required: list[str]) -> ToolSpec:
    """A ToolSpec whose parameters are a JSON-schema object."""
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": props, "required": list(required)},
    )


def s(description: str, enum: list[str] | None = None) -> dict[str, Any]:
    """A string parameter schema."""
    out: dict[str, Any] = {"type": "string", "description": description}
    if enum:
        out["enum"] = list(enum)
    return out


def num(description: str) -> dict[str, Any]:
    """A number parameter schema."""
    return {"type": "number", "description": description}


def integer(description: str) -> dict[str, Any]:
    """An integer parameter schema."""
    return {"type": "integer", "description": description}


@dataclass(frozen=True)
class Intent:
    """Something a user asks the agent to do to one entity, and the tool that does it.

    `ops` are imperative verb phrases with a `{ref}` slot ("verify the receipt of {ref}"); `extra` lists further
    required arguments as (argument, values) whose value the user states in the same phrase (`{details}`);
    `leads` are situation sentences that may open the request and never name an entity."""

    key: str
    tool: str
    kind: str  # "read" | "write"
    gist: str  # infinitive phrase for thinks: "verify a shipment's receipt"
    ops: tuple[str, ...]
    leads: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    done: str = "{id} is updated"  # what a successful call did, for summaries of earlier turns

    def extra_args(self, choice: dict[str, Any]) -> dict[str, Any]:
        return {name: choice[name] for name, _ in self.extra}


@dataclass(frozen=True)
class Record:
    """How a read tool's result looks: statuses, extra fields with value pools, and a one-line summary."""

    statuses: tuple[str, ...]
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    summary: str  # "{id} is {status} with {carrier}, ETA {eta}"
    stuck_status: str  # a status a record can sit in while nothing changes (tool loops)


@dataclass(frozen=True)
class Workflow:
    """A check-then-act request: read the entity, and if its status is `ready` do the write intent."""

    read: str
    write: str
    ready: str  # a status from Record.statuses
    condition: str  # "if it's at the dock"


@dataclass(frozen=True)
class ListTool:
    """A tool that lists entities by status: the fallback when the single-entity read tool fails."""

    tool: str
    arg: str
    value: str


@dataclass(frozen=True)
class Lookup:
    """A search tool that maps a secondary key (a PO number, an email) to the entity id: tool chains use it."""

    tool: str
    arg: str
    key_prefix: str  # "PO" gives keys like PO-55120; "" means the key comes from `keys`
    keys: tuple[str, ...]  # explicit key values when key_prefix is ""
    key_label: str  # "purchase order"
    find_ops: tuple[str, ...]  # "find the shipment for {key}"


@dataclass(frozen=True)
class Fact:
    """Something the agent can answer without a tool. `policy` is the system-prompt line that holds it ("" for
    general knowledge); `asks` are imperative question phrases; `answer` is the reply."""

    policy: str
    asks: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Limit:
    """An authority limit on a write intent's numeric argument: at or under `cap` the agent acts, above it escalates."""

    intent: str
    arg: str
    cap: int
    policy: str  # "You may issue refunds up to $500; anything larger goes to Finance Approvals."
    team: str
    unit: str  # "$" or " days"
    amounts_under: tuple[int, ...]
    amounts_over: tuple[int, ...]

    def show(self, amount: int) -> str:
        return f"${amount:,}" if self.unit == "$" else f"{amount}{self.unit}"


@dataclass(frozen=True)
class Escalation:
    """A request that exceeds the agent's authority: `text` is the user's statement (may use {ref}/{id})."""

    text: str
    reason: str  # "a claim that size is above what this desk can file"
    team: str


@dataclass(frozen=True)
class Refusal:
    """A request that breaks policy: `op` is an imperative phrase (may use {ref}/{id}/{person}); `policy` is the
    system-prompt line that forbids it; `reason` explains it in the reply."""

    op: str
    policy: str
    reason: str


@dataclass(frozen=True)
class Route:
    """A topic another team owns: `text` is the user's request about it, `topic` names it for the routing table."""

    topic: str
    team: str
    text: str


@dataclass(frozen=True)
class PersonData:
    """Personal records: the tool that reads one person's profile, the id format, fields that are personal data,
    and own-data requests the requester may make about themselves."""

    tool: str
    id_arg: str
    id_prefix: str
    pii_fields: tuple[str, ...]  # "home address", "personal phone number"
    own_ops: tuple[str, ...]  # "show me the details on my profile"
    other_ops: tuple[str, ...]  # "give me {person}'s {field}"
    label: str  # "employee", "customer"


@dataclass(frozen=True)
class Permission:
    """A write intent that needs an approval reference: `arg` is the tool argument holding it."""

    intent: str
    arg: str
    prefix: str  # "CHG"
    label: str  # "approved change ticket"
    policy: str  # "Access is granted only against an approved change ticket (CHG-...)."
    ask_ops: tuple[str, ...]  # the request without the approval reference: "grant {ref}"
    over_text: str  # a request no approval ticket can cover: escalate
    over_team: str
    over_reason: str


@dataclass(frozen=True)
class Domain:
    """One enterprise domain: entities, tools, intents, policies and scripted situations."""

    key: str
    schema: str  # "known" (train/val/mine/eval) | "novel" (eval_novel only)
    noun: str
    plural: str
    id_prefix: str
    id_arg: str
    id_range: tuple[int, int]
    descriptions: tuple[str, ...]
    attrs: tuple[str, ...]  # distinguishing phrases: "at dock 2"
    desc_refs: tuple[str, ...]  # "the {desc} shipment"
    implicit_refs: tuple[str, ...]  # "the shipment"
    open_state: str  # "pending"
    open_headers: tuple[str, ...]
    closed_headers: tuple[str, ...]
    orgs: tuple[str, ...]
    roles: tuple[str, ...]
    owner_team: str
    tools: tuple[ToolSpec, ...]
    intents: tuple[Intent, ...]
    record: Record
    workflow: Workflow
    list_tool: ListTool
    lookup: Lookup
    facts: tuple[Fact, ...]
    general: tuple[Fact, ...]
    escalations: tuple[Escalation, ...]
    refusals: tuple[Refusal, ...]
    routes: tuple[Route, ...]
    limit: Limit | None = None
    person: PersonData | None = None
    permission: Permission | None = None
    policies: tuple[str, ...] = field(default_factory=tuple)
    combos: tuple[tuple[str, str], ...] = ()  # write intents that make sense one after the other on one entity

    def intent(self, key: str) -> Intent:
        for intent in self.intents:
            if intent.key == key:
                return intent
        raise KeyError(f"{self.key}: no intent {key!r}")

    def tool_spec(self, name: str) -> ToolSpec:
        for spec in self.tools:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.key}: no tool {name!r}")

    @property
    def read_intents(self) -> tuple[Intent, ...]:
        return tuple(i for i in self.intents if i.kind == "read")

    @property
    def write_intents(self) -> tuple[Intent, ...]:
        return tuple(i for i in self.intents if i.kind == "write")

    def format_id(self, number: int) -> str:
        return f"{self.id_prefix}-{number}"
