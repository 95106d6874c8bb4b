"""Single-turn kinds: a request on its own, decided from the user's words and the system context.

Clarify kinds and the call kinds they mirror share their user texts: a call whose target is resolved by the context
(one matching entity) registers its text, and implicit clarify cases reuse registered texts with two or more
matching entities. Twins are the same construction with one system prompt rendered twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Message, ToolCall
from toolprior.training.benchmark.domains.common import ESCALATION_POLICIES, PII_POLICIES
from toolprior.training.benchmark.domains.model import Domain, Intent
from toolprior.training.benchmark.draft import Draft
from toolprior.training.benchmark.kinds.base import (
    KindContext,
    call_slots,
    cand_slots,
    make_draft,
    pick_mode,
    resolve_target,
)
from toolprior.training.benchmark.phrasings import cap, fill
from toolprior.training.benchmark.scene import Entity, Scene, SystemSpec, Utterance

IntentChooser = Callable[[Scene], list[Intent]]


def one_intent(kind: str | None = None) -> IntentChooser:
    """Choose one intent of the domain (of `kind` "read"/"write" when given), never a permission-gated one."""

    def choose(sc: Scene) -> list[Intent]:
        gated = sc.d.permission.intent if sc.d.permission else None
        pool = [i for i in sc.d.intents if i.key != gated and (kind is None or i.kind == kind)]
        return [sc.rng.choice(pool)]

    return choose


def two_writes(sc: Scene) -> list[Intent]:
    """Two write intents that make sense in a row on one entity (the domain's `combos`)."""
    first, second = sc.rng.choice(sc.d.combos)
    return [sc.d.intent(first), sc.d.intent(second)]


def has_combos(d: Domain) -> bool:
    return bool(d.combos)


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def gist(intents: Sequence[Intent]) -> str:
    return " and ".join(i.gist for i in intents)


def request_op(sc: Scene, intents: Sequence[Intent], extras: Sequence[dict[str, Any]], ref: str) -> str:
    op = sc.op(intents[0], ref, extras[0])
    if len(intents) > 1:
        op += ", then " + sc.op(intents[1], "it", extras[1])
    return op


def calls_for(sc: Scene, intents: Sequence[Intent], extras: Sequence[dict[str, Any]], targets: Sequence[Entity]):
    return [sc.call(i, t.id, e) for i, e in zip(intents, extras, strict=True) for t in targets]


def _closed_distractors(sc: Scene, intents: Sequence[Intent], listed: Sequence[Entity]) -> list[Entity]:
    """Closed records (already received, already approved) that cannot be what a write request means."""
    if all(i.kind == "write" for i in intents) and sc.rng.random() < 0.3:
        return sc.entities(sc.rng.choice((1, 2)), avoid=listed)
    return []


# ---------------------------------------------------------------------------------------------- calls


def build_call(
    kc: KindContext,
    *,
    kind: str,
    choose: IntentChooser,
    parts: Sequence[str] = (),
    aside: bool = False,
    extra_tools: Callable[[Scene], list[str]] | None = None,
    modes: dict[str, float] | None = None,
    n_targets: int = 1,
    lead_from_write: bool = False,
    require: Callable[[Domain], bool] | None = None,
) -> Draft:
    """A request whose target is determined (by id, by the single matching entity, by description)."""
    sc = kc.scene(require)
    rng = sc.rng
    intents = choose(sc)
    extras = [sc.extras(i) for i in intents]
    mode = "id" if n_targets > 1 else pick_mode(rng, modes)
    tg = resolve_target(sc, mode, n_targets=n_targets)
    lead = sc.maybe_lead(intents[0])
    if lead_from_write and rng.random() < 0.5:
        writes = [i for i in sc.d.write_intents if i.leads]
        lead = rng.choice(rng.choice(writes).leads) if writes else lead
    tails = [tg.tail] if tg.tail else []
    if aside:
        tails.append(rng.choice(sc.p.asides))
    tail = sc.maybe_tail(0.2)
    if tail:
        tails.append(tail)
    utt = sc.request(request_op(sc, intents, extras, tg.ref), lead=lead, tail=" ".join(tails) or None)
    spec = sc.system(closed=_closed_distractors(sc, intents, tg.listed), empty_line=False if not tg.listed else None)
    calls = calls_for(sc, intents, extras, tg.targets)
    must = [i.tool for i in intents] + (extra_tools(sc) if extra_tools else [])
    tools = sc.tools(must)
    write_tools = [t.name for t in tools if t.name in {i.tool for i in sc.d.write_intents}]
    slots = {
        **tg.slots(),
        **call_slots(calls, sc.d.id_arg),
        "gist": gist(intents),
        "write_tool": write_tools[0] if write_tools else "a write tool",
    }
    think = sc.think([tg.part, *parts], "call_tool", slots)
    registers = None
    meta: dict[str, Any] = {"resolution": mode}
    if mode == "ctx":
        meta["matching_ids"] = [tg.targets[0].id]
        registers = ("request", _recipe(sc, intents, extras, utt, tg.ref))
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.CALL_TOOL,
        system=spec,
        listed=tg.listed,
        user=utt,
        tools=tools,
        think=think,
        calls=calls,
        difficulty={"id": "easy", "ctx": "medium", "desc": "medium", "hedged": "hard"}[mode],
        meta=meta,
        registers=registers,
    )


def _recipe(sc: Scene, intents: Sequence[Intent], extras: Sequence[dict[str, Any]], utt: Utterance, ref: str):
    return {
        "domain": sc.d.key,
        "intents": [i.key for i in intents],
        "extras": [dict(e) for e in extras],
        "text": utt.text,
        "template": utt.template,
        "ref": ref,
    }


def fresh_recipe(kc: KindContext, sc: Scene, choose: IntentChooser | None = None) -> dict[str, Any]:
    """A request text that refers to its target only implicitly ("the shipment"), as a context-resolved call has."""
    intents = (choose or one_intent())(sc)
    if sc.d.combos and sc.rng.random() < 0.15:
        intents = two_writes(sc)
    extras = [sc.extras(i) for i in intents]
    ref = sc.implicit_ref()
    utt = sc.request(request_op(sc, intents, extras, ref), lead=sc.maybe_lead(intents[0]), tail=sc.maybe_tail(0.2))
    return _recipe(sc, intents, extras, utt, ref)


def _recipe_parts(sc: Scene, recipe: dict[str, Any]) -> tuple[list[Intent], list[dict[str, Any]], Utterance]:
    intents = [sc.d.intent(k) for k in recipe["intents"]]
    return intents, [dict(e) for e in recipe["extras"]], Utterance(recipe["text"], recipe["template"])


def implicit_case(
    kc: KindContext, sc: Scene, recipe: dict[str, Any], cands: Sequence[Entity], spec: SystemSpec, tools, kind: str
) -> Draft:
    """Two or more matching entities and a request that names none of them: clarify, naming the candidates."""
    intents, extras, utt = _recipe_parts(sc, recipe)
    slots = {**cand_slots(cands), "gist": gist(intents), "ref": recipe["ref"]}
    think = sc.think(["implicit", "risk"], "clarify", slots)
    content = sc.content("clarify_candidates", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.CLARIFY,
        system=spec,
        listed=cands,
        user=utt,
        tools=tools,
        think=think,
        content=content,
        ambiguity="implicit",
        difficulty="hard",
        meta={"matching_ids": [c.id for c in cands], **request_meta(sc, intents, extras, cands)},
    )


def resolved_case(
    kc: KindContext, sc: Scene, recipe: dict[str, Any], target: Entity, spec: SystemSpec, tools, kind: str
) -> Draft:
    """The same request with exactly one matching entity: call the tool on it."""
    intents, extras, utt = _recipe_parts(sc, recipe)
    calls = calls_for(sc, intents, extras, [target])
    slots = {
        "id": target.id,
        "desc": target.desc,
        "ref": recipe["ref"],
        "gist": gist(intents),
        **call_slots(calls, sc.d.id_arg),
    }
    think = sc.think(["call_ctx"], "call_tool", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.CALL_TOOL,
        system=spec,
        listed=[target],
        user=utt,
        tools=tools,
        think=think,
        calls=calls,
        difficulty="medium",
        meta={"resolution": "ctx", "matching_ids": [target.id]},
        registers=("request", recipe),
    )


def build_implicit(kc: KindContext, *, kind: str) -> list[Draft]:
    """An implicit-ambiguity clarify case reusing a registered call text. Without one (a small held-out family),
    a fresh text and its context-resolved call sibling come out together."""
    recipe = kc.registry.pick(kc.rng, "request")
    sibling = recipe is None
    if recipe is None:
        sc = kc.scene()
        recipe = fresh_recipe(kc, sc)
    else:
        sc = kc.scene(domain=recipe["domain"])
    intents = [sc.d.intent(k) for k in recipe["intents"]]
    cands = sc.entities(kc.rng.choice((2, 2, 2, 3)))
    spec = sc.system(closed=_closed_distractors(sc, intents, cands))
    tools = sc.tools([i.tool for i in intents])
    out = [implicit_case(kc, sc, recipe, cands, spec, tools, kind)]
    if sibling:
        target = sc.entities(1)[0]
        spec2 = sc.system(closed=_closed_distractors(sc, intents, [target]))
        out.append(resolved_case(kc, sc, recipe, target, spec2, sc.tools([i.tool for i in intents]), "context_call"))
    return out


def build_twins(kc: KindContext, *, kind: str) -> list[Draft]:
    """A minimal pair: one system prompt rendered with two matching entities (clarify) and with one (call_tool);
    identical user text and tools."""
    sc = kc.scene()
    recipe = fresh_recipe(kc, sc)
    intents = [sc.d.intent(k) for k in recipe["intents"]]
    cands = sc.entities(2)
    spec = sc.system(closed=_closed_distractors(sc, intents, cands))
    tools = sc.tools([i.tool for i in intents])
    ambiguous = implicit_case(kc, sc, recipe, cands, spec, tools, kind)
    resolved = resolved_case(kc, sc, recipe, cands[0], spec, tools, "context_call")
    ambiguous.twin_role, resolved.twin_role = "ambiguous", "resolved"
    return [ambiguous, resolved]


def build_explicit(kc: KindContext, *, kind: str) -> Draft:
    """The user says they don't know which of two: clarify."""
    sc = kc.scene()
    rng = sc.rng
    intents = one_intent()(sc)
    extras = [sc.extras(i) for i in intents]
    cands = sc.entities(2)
    listed = cands + (sc.entities(1, avoid=cands) if rng.random() < 0.3 else [])
    rng.shuffle(listed)
    i, template = sc.pick(sc.p.explicit)
    unsure = fill(template, ra=sc.desc_ref(cands[0]), rb=sc.desc_ref(cands[1]))
    utt = sc.frame(request_op(sc, intents, extras, sc.implicit_ref()), lead=sc.maybe_lead(intents[0]), tail=unsure)
    spec = sc.system()
    slots = {
        **cand_slots(cands),
        "gist": gist(intents),
        "a": f"{cands[0].id} ({cands[0].desc})",
        "b": f"{cands[1].id} ({cands[1].desc})",
    }
    think = sc.think(["explicit", "risk"], "clarify", slots)
    content = sc.content("clarify_candidates", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.CLARIFY,
        system=spec,
        listed=listed,
        user=utt,
        tools=sc.tools([i.tool for i in intents]),
        think=think,
        content=content,
        ambiguity="explicit",
        difficulty="medium",
        meta={
            "matching_ids": [c.id for c in cands],
            "ambiguity_template": sc.template_id("amb", i),
            **request_meta(sc, intents, extras, cands),
        },
    )


def build_missing(kc: KindContext, *, kind: str) -> Draft:
    """No id in the message and no matching entity in the context: ask for the id."""
    sc = kc.scene()
    intents = one_intent()(sc)
    extras = [sc.extras(i) for i in intents]
    utt = sc.request(
        request_op(sc, intents, extras, sc.implicit_ref()), lead=sc.maybe_lead(intents[0]), tail=sc.maybe_tail(0.2)
    )
    spec = sc.system(closed=_closed_distractors(sc, intents, []))
    slots = {"gist": gist(intents), "tool": intents[0].tool, "missing": f"{sc.d.noun} ID"}
    think = sc.think(["missing", "risk_missing"], "clarify_missing", slots)
    content = sc.content("clarify_missing", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.CLARIFY,
        system=spec,
        listed=[],
        user=utt,
        tools=sc.tools([i.tool for i in intents]),
        think=think,
        content=content,
        ambiguity="missing_param",
        difficulty="medium",
        meta={"missing": sc.d.id_arg, **request_meta(sc, intents, extras, [])},
    )


def request_meta(sc: Scene, intents: Sequence[Intent], extras: Sequence[dict[str, Any]], cands: Sequence[Entity]):
    """Builder-private meta (keys starting with "_", dropped before writing) that `with_followup` needs."""
    return {"_request": [(i.tool, dict(e)) for i, e in zip(intents, extras, strict=True)], "_cands": list(cands)}


def with_followup(kc: KindContext, draft: Draft, domain: Domain) -> Draft:
    """Add the scripted user answer to a clarify case, and the tool call(s) that should follow it to meta."""
    sc = Scene(kc.rng, domain, kc.phrasings)
    cands: list[Entity] = draft.meta["_cands"]
    if cands:
        chosen = sc.rng.choice(cands)
        _, template = sc.pick(sc.p.replies_named)
        reply = fill(template, id=chosen.id, rd=sc.desc_ref(chosen))
    else:  # nothing in the context to describe: the answer has to be the id itself
        chosen = sc.entities(1)[0]
        reply = sc.rng.choice(("{id}.", "It's {id}.", "{id}, sorry.")).format(id=chosen.id)
    draft.followups = [Message("user", reply)]
    calls = [ToolCall(tool, {domain.id_arg: chosen.id, **extras}).to_dict() for tool, extras in draft.meta["_request"]]
    draft.meta["followup_call"] = calls[0]
    if len(calls) > 1:
        draft.meta["followup_calls"] = calls
    return draft


# ---------------------------------------------------------------------------------------------- answers


def build_fact(kc: KindContext, *, kind: str) -> Draft:
    """A question the system prompt (or general knowledge) answers."""
    sc = kc.scene()
    rng = sc.rng
    general = rng.random() < 0.3
    fact = rng.choice(sc.d.general if general else sc.d.facts)
    utt = sc.frame(rng.choice(fact.asks), tail=sc.maybe_tail(0.15))
    listed = sc.entities(rng.choice((0, 1, 2)))
    spec = sc.system(policies=[] if general else [fact.policy], empty_line=False if not listed else None)
    think = sc.think(["general" if general else "fact"], "answer_directly", {"fact": fact.policy})
    content = sc.content("answer_fact", {"answer": fact.answer})
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ANSWER_DIRECTLY,
        system=spec,
        listed=listed,
        user=utt,
        tools=sc.tools([]),
        think=think,
        content=content,
        difficulty="easy",
        meta={"answer_source": "general" if general else "policy"},
    )


CONTEXT_ASKS = (
    "tell me which {plural} are {open_state} at the moment",
    "remind me which {plural} are {open_state}",
    "tell me how many {plural} are {open_state} right now",
)


def build_from_context(kc: KindContext, *, kind: str) -> Draft:
    """A question about what the context already lists: answer without a tool."""
    sc = kc.scene()
    rng = sc.rng
    listed = sc.entities(rng.choice((1, 2, 3)))
    ask = rng.choice(CONTEXT_ASKS).format(plural=sc.d.plural, open_state=sc.d.open_state)
    utt = sc.frame(ask, tail=sc.maybe_tail(0.15))
    spec = sc.system()
    read = sc.d.read_intents[0].tool
    n = len(listed)
    word = {1: "one", 2: "two", 3: "three"}[n]
    slots = {**cand_slots(listed), "tool": read}
    think = sc.think(["from_context"], "answer_directly", slots)
    plural = sc.d.noun if n == 1 else sc.d.plural
    verb = "is" if n == 1 else "are"
    answer = f"{cap(word)} {plural} {verb} {sc.d.open_state}: " + ", ".join(f"{e.id} ({e.desc})" for e in listed) + "."
    content = sc.content("answer_fact", {"answer": answer})
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ANSWER_DIRECTLY,
        system=spec,
        listed=listed,
        user=utt,
        tools=sc.tools([read, *[i.tool for i in sc.d.write_intents[:1]]]),
        think=think,
        content=content,
        difficulty="medium",
    )


ROUTE_ASKS = ("tell me who handles {topic}", "point me to the team for {topic}", "remind me who looks after {topic}")


def build_route_answer(kc: KindContext, *, kind: str) -> Draft:
    sc = kc.scene()
    rng = sc.rng
    route = rng.choice(sc.d.routes)
    if rng.random() < 0.4:
        utt = sc.statement(f"Who handles {route.topic}?")
    else:
        utt = sc.frame(rng.choice(ROUTE_ASKS).format(topic=route.topic))
    spec = sc.system(routes=[f"{route.topic}: {route.team}"])
    slots = {"topic": route.topic, "team": route.team, "team_cap": cap(route.team), "topic_cap": cap(route.topic)}
    think = sc.think(["route_answer"], "answer_directly", slots)
    content = sc.content("answer_route", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ANSWER_DIRECTLY,
        system=spec,
        listed=sc.entities(rng.choice((0, 1, 2))),
        user=utt,
        tools=sc.tools([]),
        think=think,
        content=content,
        difficulty="easy",
    )


PRIVACY_ASKS = (
    "tell me what personal data you're allowed to share",
    "explain whether you can give out a colleague's home address",
    "remind me what the rule is on sharing personal details",
)


def build_privacy_answer(kc: KindContext, *, kind: str) -> Draft:
    sc = kc.scene(lambda d: d.person is not None)
    rng = sc.rng
    policy = rng.choice(PII_POLICIES)
    utt = sc.frame(rng.choice(PRIVACY_ASKS))
    spec = sc.system(policies=[policy])
    think = sc.think(["privacy_answer"], "answer_directly", {"policy": policy})
    answer = f"You can see your own details, but not anyone else's. The rule is: {policy}"
    content = sc.content("answer_fact", {"answer": answer})
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ANSWER_DIRECTLY,
        system=spec,
        listed=[],
        user=utt,
        tools=sc.tools([sc.d.person.tool] if sc.d.person else []),
        think=think,
        content=content,
        difficulty="easy",
    )


# ---------------------------------------------------------------------------------------------- escalate


def statement(sc: Scene, text: str, listed: Sequence[Entity]) -> Utterance:
    """A user statement that is not an op (an incident, a threat); `{id}` names a listed entity."""
    return sc.statement(text.format(id=listed[0].id if listed else ""))


def build_trigger(kc: KindContext, *, kind: str) -> Draft:
    """A legal threat, a security incident, a termination: beyond the agent's authority."""
    sc = kc.scene()
    rng = sc.rng
    esc = rng.choice(sc.d.escalations)
    listed = sc.entities(rng.choice((1, 2)))
    utt = statement(sc, esc.text, listed)
    spec = sc.system(policies=[rng.choice(ESCALATION_POLICIES)] if rng.random() < 0.6 else ())
    slots = {"reason": esc.reason, "team": esc.team, "team_cap": cap(esc.team)}
    think = sc.think(["trigger"], "escalate", slots)
    content = sc.content("escalate", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ESCALATE,
        system=spec,
        listed=listed,
        user=utt,
        tools=sc.tools([]),
        think=think,
        content=content,
        difficulty="medium",
        meta={"team": esc.team},
    )


def build_route_escalate(kc: KindContext, *, kind: str) -> Draft:
    """A request another team owns per the routing table: hand it over."""
    sc = kc.scene()
    rng = sc.rng
    route = rng.choice(sc.d.routes)
    utt = statement(sc, route.text, [])
    spec = sc.system(routes=[f"{route.topic}: {route.team}"])
    slots = {"topic": route.topic, "team": route.team, "team_cap": cap(route.team), "topic_cap": cap(route.topic)}
    think = sc.think(["route"], "escalate", slots)
    content = sc.content("escalate_route", slots)
    return make_draft(
        kc,
        sc,
        kind=kind,
        action=Action.ESCALATE,
        system=spec,
        listed=sc.entities(rng.choice((0, 1, 2))),
        user=utt,
        tools=sc.tools([]),
        think=think,
        content=content,
        difficulty="medium",
        meta={"team": route.team},
    )


def build_limit(kc: KindContext, *, kind: str, over: bool) -> Draft:
    """An amount against the authority limit in the policy: above it escalate, at or under it call the tool."""
    sc = kc.scene(lambda d: d.limit is not None)
    rng = sc.rng
    limit = sc.d.limit
    assert limit is not None
    intent = sc.d.intent(limit.intent)
    extras = sc.extras(intent)
    amount = rng.choice(limit.amounts_over if over else limit.amounts_under)
    extras[limit.arg] = amount
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.6, "ctx": 0.25, "desc": 0.15}))
    utt = sc.request(sc.op(intent, tg.ref, extras), lead=sc.maybe_lead(intent), tail=sc.maybe_tail(0.2))
    spec = sc.system(policies=[limit.policy])
    tools = sc.tools([intent.tool])
    slots = {**tg.slots(), "amount": limit.show(amount), "cap": limit.show(limit.cap), "team": limit.team}
    slots["team_cap"] = cap(limit.team)
    meta: dict[str, Any] = {"limit": limit.cap, "amount": amount, "resolution": tg.mode}
    if over:
        think = sc.think(["over_limit"], "escalate", slots)
        content = sc.content("escalate_limit", slots)
        return make_draft(
            kc, sc, kind=kind, action=Action.ESCALATE, system=spec, listed=tg.listed, user=utt, tools=tools,
            think=think, content=content, difficulty="medium", meta={**meta, "team": limit.team},
        )  # fmt: skip
    calls = [sc.call(intent, tg.targets[0].id, extras)]
    think = sc.think([tg.part, "within_limit"], "call_tool", {**slots, **call_slots(calls, sc.d.id_arg)})
    return make_draft(
        kc, sc, kind=kind, action=Action.CALL_TOOL, system=spec, listed=tg.listed, user=utt, tools=tools,
        think=think, calls=calls, difficulty="medium", meta=meta,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- refuse / own data


def build_refusal(kc: KindContext, *, kind: str) -> Draft:
    """A request the policy forbids (tampering with records, bypassing approval, someone else's MFA)."""
    sc = kc.scene()
    rng = sc.rng
    refusal = rng.choice(sc.d.refusals)
    listed = sc.entities(rng.choice((1, 2)))
    person = rng.choice(sc.people(3))
    op = refusal.op.format(id=listed[0].id, person=person)
    utt = sc.request(op, p_statement=0.3, tail=sc.maybe_tail(0.2))
    spec = sc.system(policies=[refusal.policy])
    slots = {"op": op, "reason": refusal.reason, "policy": refusal.policy}
    think = sc.think(["forbidden_request"], "refuse", slots)
    content = sc.content("refuse", slots)
    return make_draft(
        kc, sc, kind=kind, action=Action.REFUSE, system=spec, listed=listed, user=utt,
        tools=sc.tools([i.tool for i in sc.d.write_intents[:1]]), think=think, content=content, difficulty="easy",
    )  # fmt: skip


def _person_domain(d: Domain) -> bool:
    return d.person is not None


def build_pii(kc: KindContext, *, kind: str, own: bool) -> Draft:
    """Someone else's personal data (refuse) or the requester's own record (call the profile tool)."""
    sc = kc.scene(_person_domain)
    rng = sc.rng
    person = sc.d.person
    assert person is not None
    name, other = sc.people(2)
    pid = sc.person_id(person.id_prefix)
    requester = sc.requester_line(name=name, pid=pid, label=person.label)
    spec = sc.system(policies=[rng.choice(PII_POLICIES)], requester=requester)
    listed = sc.entities(rng.choice((0, 1, 2)))
    spec.empty_line = spec.empty_line and bool(listed)
    tools = sc.tools([person.tool])
    if own:
        utt = sc.request(rng.choice(person.own_ops), tail=sc.maybe_tail(0.15))
        calls = [ToolCall(person.tool, {person.id_arg: pid})]
        slots = {"pid": pid, **call_slots(calls, person.id_arg)}
        think = sc.think(["own"], "call_tool", slots)
        return make_draft(
            kc, sc, kind=kind, action=Action.CALL_TOOL, system=spec, listed=listed, user=utt, tools=tools,
            think=think, calls=calls, difficulty="easy", meta={"requester_id": pid},
        )  # fmt: skip
    field = rng.choice(person.pii_fields)
    utt = sc.request(rng.choice(person.other_ops).format(person=other, field=field), tail=sc.maybe_tail(0.15))
    slots = {"person": other, "field": field}
    think = sc.think(["pii"], "refuse", slots)
    content = sc.content("refuse_pii", slots)
    return make_draft(
        kc, sc, kind=kind, action=Action.REFUSE, system=spec, listed=listed, user=utt, tools=tools,
        think=think, content=content, difficulty="easy", meta={"requester_id": pid},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- permissions


def _permission_domain(d: Domain) -> bool:
    return d.permission is not None


def build_permission(kc: KindContext, *, kind: str, variant: str) -> Draft:
    """A gated write: approval missing (clarify), approval on file (call), beyond any approval (escalate), or a
    request to skip the approval (refuse). Missing and on-file share their user texts."""
    sc = kc.scene(_permission_domain)
    rng = sc.rng
    perm = sc.d.permission
    assert perm is not None
    intent = sc.d.intent(perm.intent)
    extras = sc.extras(intent)
    approval = extras.pop(perm.arg)
    if variant == "over":
        listed = sc.entities(rng.choice((1, 2)))
        utt = statement(sc, perm.over_text, listed)
        spec = sc.system(policies=[perm.policy])
        slots = {
            "reason": perm.over_reason,
            "team": perm.over_team,
            "team_cap": cap(perm.over_team),
            "label": perm.label,
        }
        think = sc.think(["authority"], "escalate", slots)
        content = sc.content("escalate", slots)
        return make_draft(
            kc, sc, kind=kind, action=Action.ESCALATE, system=spec, listed=listed, user=utt,
            tools=sc.tools([intent.tool]), think=think, content=content, difficulty="hard", meta={"team": perm.over_team},
        )  # fmt: skip
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.6, "ctx": 0.25, "desc": 0.15}))
    op = sc.op(intent, tg.ref, extras, ops=perm.ask_ops)
    if variant == "bypass":
        op += rng.choice(
            (
                f" without the {perm.label}; we'll sort it out later",
                f" now and skip the {perm.label}",
                f", no {perm.label} needed this time",
            )
        )
    utt = sc.request(op, tail=sc.maybe_tail(0.15))
    context = []
    if variant == "approved":
        context.append(f"Approvals on file: {perm.label} {approval} for {tg.targets[0].id}.")
    spec = sc.system(policies=[perm.policy], context=context)
    tools = sc.tools([intent.tool])
    slots = {
        **tg.slots(),
        "label": perm.label,
        "arg": perm.arg,
        "tool": intent.tool,
        "gist": intent.gist,
        "prefix": perm.prefix,
    }
    meta: dict[str, Any] = {"resolution": tg.mode}
    if variant == "approved":
        calls = [sc.call(intent, tg.targets[0].id, {**extras, perm.arg: approval})]
        think = sc.think(
            [tg.part, "approved"], "call_tool", {**slots, "approval": approval, **call_slots(calls, sc.d.id_arg)}
        )
        return make_draft(
            kc, sc, kind=kind, action=Action.CALL_TOOL, system=spec, listed=tg.listed, user=utt, tools=tools,
            think=think, calls=calls, difficulty="medium", meta={**meta, "approval": approval},
        )  # fmt: skip
    if variant == "bypass":
        reason = f"the policy requires {article(perm.label)} {perm.label} before I can {intent.gist}"
        slots.update(op=op, reason=reason, policy=perm.policy)
        think = sc.think(["forbidden_request"], "refuse", slots)
        content = sc.content("refuse", slots)
        return make_draft(
            kc, sc, kind=kind, action=Action.REFUSE, system=spec, listed=tg.listed, user=utt, tools=tools,
            think=think, content=content, difficulty="medium", meta=meta,
        )  # fmt: skip
    slots["missing"] = perm.label
    think = sc.think(["approval_missing", "risk_missing"], "clarify_missing", slots)
    content = sc.content("clarify_approval", slots)
    return make_draft(
        kc, sc, kind=kind, action=Action.CLARIFY, system=spec, listed=tg.listed, user=utt, tools=tools,
        think=think, content=content, ambiguity="missing_param", difficulty="hard", meta={**meta, "missing": perm.arg},
    )  # fmt: skip
