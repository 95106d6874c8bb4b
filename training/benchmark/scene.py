"""A scene: one domain, one random stream and one phrasing family, with the helpers every case builder uses.

It draws entities, renders the system prompt (opener, policies, routing, context with the entity lines), composes
user utterances from frames and ops, and renders thinks and gold content from the pools. A `SystemSpec` holds every
random choice of a system prompt, so twins render the same prompt with one entity more or less.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from toolprior.cases import Message, ToolCall, ToolSpec
from toolprior.training.benchmark import phrasings as ph
from toolprior.training.benchmark.domains.common import (
    AUDIT_POLICIES,
    DAYS,
    ESCALATION_POLICIES,
    MONTHS,
    PEOPLE,
    PII_POLICIES,
    TITLES,
)
from toolprior.training.benchmark.domains.model import Domain, Intent
from toolprior.training.benchmark.responses import RESPONSES
from toolprior.training.benchmark.thinks import CONCLUSIONS, OBSERVATIONS

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
_FAMILIES = (PII_POLICIES, AUDIT_POLICIES, ESCALATION_POLICIES)  # at most one wording of each rule per prompt


@dataclass(frozen=True)
class Entity:
    """One record in the context: `SHP-1029 (MRI parts, at dock 2)`."""

    id: str
    desc: str
    attr: str


def cands_and(entities: Sequence[Entity]) -> str:
    """`SHP-1 (MRI parts) and SHP-2 (surgical tools)`; three or more with commas."""
    parts = [f"{e.id} ({e.desc})" for e in entities]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def cands_or(entities: Sequence[Entity]) -> str:
    parts = [f"{e.id} ({e.desc})" for e in entities]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def display(value: Any) -> str:
    """How an argument value reads in text: integers with thousands separators."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class SystemSpec:
    """Every choice of one system prompt except the list of open entities, which `render` takes."""

    opener: str
    policy_header: str
    policies: list[str]
    routing_header: str
    routes: list[str]
    context_header: str
    context_lines: list[str]  # other context lines; the open-entity line goes in at `open_at`
    open_at: int
    open_header: str
    style: int
    show_attr: bool
    empty_line: bool  # with no open entities: show "<header>: none" (True) or leave the line out

    def entity_line(self, entities: Sequence[Entity]) -> str | None:
        if not entities:
            return f"{self.open_header}: none on file." if self.empty_line else None

        def inner(e: Entity) -> str:
            return f"{e.desc}, {e.attr}" if self.show_attr else e.desc

        if self.style == 0:
            return f"{self.open_header}: " + ", ".join(f"{e.id} ({inner(e)})" for e in entities) + "."
        if self.style == 1:
            return f"{self.open_header}: " + "; ".join(f"{e.id}: {inner(e)}" for e in entities) + "."
        return f"{self.open_header}:" + "".join(f"\n- {e.id}: {inner(e)}" for e in entities)

    def render(self, open_entities: Sequence[Entity]) -> str:
        lines = [self.opener, "", self.policy_header, *(f"- {p}" for p in self.policies)]
        if self.routes:
            lines += [self.routing_header, *(f"- {r}" for r in self.routes)]
        context = list(self.context_lines)
        entity_line = self.entity_line(open_entities)
        if entity_line is not None:
            context.insert(min(self.open_at, len(context)), entity_line)
        lines += [self.context_header, *context]
        return "\n".join(lines)


@dataclass
class Utterance:
    """A user message and the id of the template it came from."""

    text: str
    template: str


@dataclass
class Rendered:
    """A think or a content text with the ids of the pool entries it was made of."""

    text: str
    ids: list[str] = field(default_factory=list)


class Scene:
    """Helpers bound to one domain, one phrasing family and one random stream."""

    def __init__(self, rng: random.Random, domain: Domain, phrasings: ph.Phrasings):
        self.rng = rng
        self.d = domain
        self.p = phrasings
        self.novel = phrasings.schema == "novel"

    # ------------------------------------------------------------------ entities and people

    def entities(self, n: int, *, shared_attr: bool = False, avoid: Sequence[Entity] = ()) -> list[Entity]:
        """`n` entities with distinct ids and descriptions; with `shared_attr` they all carry the same attribute,
        otherwise distinct ones."""
        taken_ids = {e.id for e in avoid}
        taken_desc = {e.desc for e in avoid}
        low, high = self.d.id_range
        ids: list[str] = []
        while len(ids) < n:
            candidate = self.d.format_id(self.rng.randint(low, high))
            if candidate not in taken_ids and candidate not in ids:
                ids.append(candidate)
        descs = self.rng.sample([x for x in self.d.descriptions if x not in taken_desc], n)
        attrs = [self.rng.choice(self.d.attrs)] * n if shared_attr else self.rng.sample(list(self.d.attrs), n)
        return [Entity(i, desc, a) for i, desc, a in zip(ids, descs, attrs, strict=True)]

    def typo_of(self, entity: Entity, avoid: Sequence[Entity]) -> str:
        """A plausible mistyped id: two digits swapped, or one digit changed; never an id in `avoid`."""
        prefix, digits = entity.id.rsplit("-", 1)
        taken = {e.id for e in avoid} | {entity.id}
        for _ in range(50):
            chars = list(digits)
            i = self.rng.randrange(len(chars) - 1)
            if chars[i] != chars[i + 1] and self.rng.random() < 0.6:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            else:
                j = self.rng.randrange(len(chars))
                chars[j] = str((int(chars[j]) + self.rng.randint(1, 8)) % 10)
            candidate = f"{prefix}-{''.join(chars)}"
            if candidate not in taken and not candidate.split("-")[1].startswith("0"):
                return candidate
        return f"{prefix}-{digits}9"

    def people(self, n: int) -> list[str]:
        return self.rng.sample(list(PEOPLE), n)

    def person_id(self, prefix: str) -> str:
        return f"{prefix}-{self.rng.randint(1001, 9899)}"

    # ------------------------------------------------------------------ system prompt

    def system(
        self,
        *,
        policies: Sequence[str] = (),
        routes: Sequence[str] = (),
        context: Sequence[str] = (),
        requester: str | None = None,
        closed: Sequence[Entity] = (),
        show_attr: bool | None = None,
        empty_line: bool | None = None,
    ) -> SystemSpec:
        """A system prompt with the given must-have policy, routing and context lines plus random extras."""
        rng, d = self.rng, self.d
        pol = list(policies)
        extras: list[str] = [f.policy for f in rng.sample(list(d.facts), rng.randint(0, min(2, len(d.facts))))]
        if d.limit is not None and rng.random() < 0.6:
            extras.append(d.limit.policy)
        if d.permission is not None and rng.random() < 0.5:
            extras.append(d.permission.policy)
        if rng.random() < 0.5:
            extras.append(rng.choice(PII_POLICIES))
        if rng.random() < 0.25:
            extras.append(rng.choice(AUDIT_POLICIES))
        if rng.random() < 0.3:
            extras.append(rng.choice(ESCALATION_POLICIES))
        extras += list(d.policies)
        for line in extras:
            same_family = any(line in family and any(p in family for p in pol) for family in _FAMILIES)
            if line not in pol and not same_family:
                pol.append(line)
        if not pol:
            pol.append(rng.choice(PII_POLICIES))
        rng.shuffle(pol)
        route_lines = list(routes)
        if not route_lines and rng.random() < 0.4:
            route_lines = [f"{r.topic}: {r.team}" for r in rng.sample(list(d.routes), 1)]
        rng.shuffle(route_lines)

        lines = list(context)
        who = requester if requester is not None else self.requester_line()
        lines.insert(0, who)
        if closed:
            header = rng.choice(d.closed_headers)
            lines.append(f"{header}: " + ", ".join(f"{e.id} ({e.desc})" for e in closed) + ".")
        lines.append(
            ph.fill(rng.choice(ph.DATE_LINES), day=rng.choice(DAYS), date=rng.randint(2, 28), month=rng.choice(MONTHS))
        )
        opener = ph.fill(rng.choice(self.p.openers), org=rng.choice(d.orgs), role=rng.choice(d.roles))
        return SystemSpec(
            opener=opener,
            policy_header=rng.choice(ph.POLICY_HEADERS),
            policies=pol,
            routing_header=rng.choice(ph.ROUTING_HEADERS),
            routes=route_lines,
            context_header=rng.choice(ph.CONTEXT_HEADERS),
            context_lines=lines,
            open_at=rng.randint(1, len(lines) - 1),
            open_header=rng.choice(d.open_headers),
            style=rng.randrange(3),
            show_attr=rng.random() < 0.5 if show_attr is None else show_attr,
            empty_line=rng.random() < 0.5 if empty_line is None else empty_line,
        )

    def requester_line(self, name: str | None = None, pid: str | None = None, label: str | None = None) -> str:
        name = name or self.rng.choice(PEOPLE)
        suffix = f", {label} {pid}" if pid else ""
        return ph.fill(self.rng.choice(ph.REQUESTER_LINES), name=name, title=self.rng.choice(TITLES), pid=suffix)

    def tools(self, must: Sequence[str], *, total: int | None = None) -> list[ToolSpec]:
        """The tools offered: every `must` tool plus random others of the domain, 3 to 6 in all, shuffled."""
        names = list(dict.fromkeys(must))
        others = [t.name for t in self.d.tools if t.name not in names]
        if self.d.person is not None and self.d.person.tool not in names and self.d.person.tool in others:
            others.remove(self.d.person.tool)  # the personal-data tool only where a case is about people
        want = total if total is not None else self.rng.randint(max(3, len(names)), max(3, len(names), 5))
        names += self.rng.sample(others, max(0, min(len(others), want - len(names))))
        self.rng.shuffle(names)
        return [self.d.tool_spec(n) for n in names]

    # ------------------------------------------------------------------ user text

    def pick(self, pool: Sequence[str]) -> tuple[int, str]:
        i = self.rng.randrange(len(pool))
        return i, pool[i]

    def template_id(self, kind: str, index: int) -> str:
        return f"{self.p.prefix}{kind}{index + 1:02d}"

    def extras(self, intent: Intent) -> dict[str, Any]:
        return {name: self.rng.choice(values) for name, values in intent.extra}

    def op(self, intent: Intent, ref: str, extras: dict[str, Any], *, ops: Sequence[str] | None = None) -> str:
        template = self.rng.choice(list(ops if ops is not None else intent.ops))
        return template.format(ref=ref, **{k: display(v) for k, v in extras.items()})

    def frame(
        self,
        op: str,
        *,
        lead: str | None = None,
        tail: str | None = None,
        frame: int | None = None,
        frames: Sequence[str] | None = None,
        kind: str = "",
        greeting_ok: bool = True,
    ) -> Utterance:
        """`lead + frame(op) + tail`, the frame drawn among those that read well around `op`; the template id names
        the frame."""
        pool = frames if frames is not None else self.p.frames
        if frame is not None:
            index = frame
        else:
            fits = [i for i, f in enumerate(pool) if ph.frame_fits(f, op, greeting_ok=greeting_ok and not lead)]
            index = self.rng.choice(fits or list(range(len(pool))))
        body = ph.fill(pool[index], op=op)
        text = " ".join(x for x in (lead, body, tail) if x)
        return Utterance(text, self.template_id(kind, index))

    def statement(self, stmt: str) -> Utterance:
        """A whole sentence in a statement frame ("Urgent: ...")."""
        index = self.rng.randrange(len(self.p.statements))
        return Utterance(ph.fill(self.p.statements[index], stmt=stmt), self.template_id("st", index))

    def request(self, op: str, *, p_statement: float = 0.15, **kw: Any) -> Utterance:
        """Usually `frame(op)`; sometimes the bare imperative as a statement ("Hi. Lock DEV-4410.")."""
        if self.rng.random() < p_statement and not kw.get("tail"):
            return self.statement(" ".join(x for x in (kw.get("lead"), ph.cap(op) + ".") if x))
        return self.frame(op, **kw)

    def maybe_lead(self, intent: Intent, p: float = 0.4) -> str | None:
        return self.rng.choice(intent.leads) if intent.leads and self.rng.random() < p else None

    def maybe_tail(self, p: float = 0.25) -> str | None:
        return self.rng.choice(self.p.tails) if self.rng.random() < p else None

    def implicit_ref(self) -> str:
        return self.rng.choice(self.d.implicit_refs)

    def desc_ref(self, entity: Entity) -> str:
        return self.rng.choice(self.d.desc_refs).format(desc=entity.desc, noun=self.d.noun)

    def backref(self) -> str:
        return self.rng.choice(self.p.backrefs).format(noun=self.d.noun)

    # ------------------------------------------------------------------ think and content

    def base_slots(self) -> dict[str, Any]:
        d = self.d
        return {
            "noun": d.noun,
            "plural": d.plural,
            "open_state": d.open_state,
            "id_arg": d.id_arg,
            "example": d.format_id(d.id_range[0] + 28),
        }

    def _pick_pool(self, pool: tuple[tuple[str, ...], tuple[str, ...]]) -> tuple[int, str]:
        entries = pool[1] if self.novel else pool[0]
        i = self.rng.randrange(len(entries))
        return i, entries[i]

    def think(self, parts: Sequence[str], conclusion: str, slots: dict[str, Any]) -> Rendered:
        """Observation sentences (one per situation in `parts`) then a conclusion for `conclusion`."""
        values = {**self.base_slots(), **slots}
        values.setdefault("ids", values.get("id", ""))
        texts, ids = [], []
        for part in parts:
            i, template = self._pick_pool(OBSERVATIONS[part])
            texts.append(ph.fill(template, **values))
            ids.append(f"{part}.{'n' if self.novel else 'k'}{i}")
        i, template = self._pick_pool(CONCLUSIONS[conclusion])
        texts.append(ph.fill(template, **values))
        ids.append(f"{conclusion}.{'n' if self.novel else 'k'}{i}")
        return Rendered(" ".join(texts), ids)

    def content(self, key: str, slots: dict[str, Any]) -> Rendered:
        i, template = self._pick_pool(RESPONSES[key])
        return Rendered(ph.fill(template, **{**self.base_slots(), **slots}), [f"{key}.{i}"])

    # ------------------------------------------------------------------ tool results

    def record(self, entity: Entity, status: str | None = None) -> tuple[dict[str, Any], str]:
        """A read tool's JSON result for `entity` and its one-line summary."""
        rec = self.d.record
        fields = {name: self.rng.choice(values) for name, values in rec.fields}
        chosen = status if status is not None else self.rng.choice(rec.statuses)
        result = {self.d.id_arg: entity.id, "status": chosen, **fields}
        summary = rec.summary.format(id=entity.id, status=chosen, **fields)
        return result, summary

    @staticmethod
    def tool_message(name: str, payload: dict[str, Any] | str) -> Message:
        content = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        return Message(role="tool", content=content, name=name)

    def call(self, intent: Intent, entity_id: str, extras: dict[str, Any] | None = None) -> ToolCall:
        return ToolCall(name=intent.tool, arguments={self.d.id_arg: entity_id, **(extras or {})})
