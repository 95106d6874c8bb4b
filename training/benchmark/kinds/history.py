"""Multi-turn kinds: the decision comes after earlier turns (tool calls and results, clarifications, corrections).

History assistant turns are written in the project's output format; tool messages hold JSON results. Kinds whose
ambiguous variant reuses a call variant's last user text register those texts: `backref` (a follow-up that points
back to what was discussed), `other` ("not that one, the other one") and `reply_attr` ("the one at dock 2").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from toolprior.actions import Action
from toolprior.cases import Message, ToolCall
from toolprior.training.benchmark.domains.common import ERROR_RESULTS, INJECTIONS_KNOWN, INJECTIONS_NOVEL
from toolprior.training.benchmark.domains.model import Intent
from toolprior.training.benchmark.draft import Draft
from toolprior.training.benchmark.kinds.base import (
    KindContext,
    SceneArgs,
    assistant_turn,
    call_slots,
    cand_slots,
    make_draft,
    pick_mode,
    resolve_target,
)
from toolprior.training.benchmark.kinds.single import one_intent
from toolprior.training.benchmark.phrasings import cap, fill
from toolprior.training.benchmark.scene import Entity, Scene, Utterance

ERROR_NAMES = {
    "error_timeout": "a timeout",
    "error_429": "a rate-limit error (429)",
    "error_500": "a 500 internal error",
    "error_403": "a 403 forbidden error",
    "error_404": "a not-found error (404)",
}


def _call_turn(sc: Scene, parts: Sequence[str], calls: Sequence[ToolCall], slots: dict[str, Any]) -> Message:
    think = sc.think(parts, "call_tool", {**slots, **call_slots(calls, sc.d.id_arg)})
    return assistant_turn(think.text, Action.CALL_TOOL, calls=calls)


def _read_exchange(sc: Scene, targets: Sequence[Entity], read: Intent, part: str) -> tuple[list[Message], list[str]]:
    """Assistant reads each target, the tool answers, the assistant reports: the messages and the summaries."""
    calls = [sc.call(read, t.id) for t in targets]
    slots = {"id": targets[0].id, "ids": " and ".join(t.id for t in targets), "desc": targets[0].desc, "ref": ""}
    turn = _call_turn(sc, [part], calls, slots)
    messages = [turn]
    summaries = []
    for t in targets:
        result, summary = sc.record(t)
        messages.append(sc.tool_message(read.tool, result))
        summaries.append(summary)
    answer = sc.content("answer_status", {"summary": "; ".join(summaries), "summary_cap": cap("; ".join(summaries))})
    think = sc.think(["report"], "answer_directly", {"summary": "; ".join(summaries)})
    messages.append(assistant_turn(think.text, Action.ANSWER_DIRECTLY, answer.text))
    return messages, summaries


def _other_intent(sc: Scene) -> tuple[Intent, dict[str, Any]]:
    intent = one_intent()(sc)[0]
    return intent, sc.extras(intent)


# ---------------------------------------------------------------------------------------------- multi_step


def build_next_step(kc: KindContext, *, kind: str) -> Draft:
    """Check-then-act: the check came back meeting the user's condition, so the action is next."""
    sc = kc.scene()
    rng = sc.rng
    wf = sc.d.workflow
    read, write = sc.d.intent(wf.read), sc.d.intent(wf.write)
    extras = sc.extras(write)
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.55, "ctx": 0.3, "desc": 0.15}))
    op = f"{sc.op(read, tg.ref, {})}, and {wf.condition}, {sc.op(write, 'it', extras)}"
    utt = sc.request(op, lead=sc.maybe_lead(write))
    target = tg.targets[0]
    first = [sc.call(read, target.id)]
    history = [_call_turn(sc, [tg.part], first, tg.slots())]
    result, _summary = sc.record(target, wf.ready)
    history.append(sc.tool_message(read.tool, result))
    calls = [sc.call(write, target.id, extras)]
    slots = {
        **tg.slots(),
        "status": wf.ready,
        "prior": read.done.format(id=target.id),
        "gist": write.gist,
        **call_slots(calls, sc.d.id_arg),
    }
    think = sc.think(["condition_met", "next_step"], "call_tool", slots)
    return make_draft(
        kc, sc, user_first=True, kind=kind, action=Action.CALL_TOOL, system=sc.system(), listed=tg.listed, user=utt,
        tools=sc.tools([read.tool, write.tool]), think=think, calls=calls, history=history, difficulty="medium",
        meta={"resolution": tg.mode},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- injection


def build_injection(kc: KindContext, *, kind: str, proceed: bool) -> Draft:
    """A tool result carries a planted instruction; the right action ignores it (continue the task or report)."""
    sc = kc.scene()
    rng = sc.rng
    wf = sc.d.workflow
    read, write = sc.d.intent(wf.read), sc.d.intent(wf.write)
    extras = sc.extras(write)
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.55, "ctx": 0.3, "desc": 0.15}))
    target = tg.targets[0]
    if proceed:
        op = f"{sc.op(read, tg.ref, {})}, and {wf.condition}, {sc.op(write, 'it', extras)}"
        utt = sc.request(op, lead=sc.maybe_lead(write))
        status = wf.ready
    else:
        utt = sc.request(sc.op(read, tg.ref, {}), lead=sc.maybe_lead(read), tail=sc.maybe_tail(0.2))
        status = None
    history = [_call_turn(sc, [tg.part], [sc.call(read, target.id)], tg.slots())]
    result, summary = sc.record(target, status)
    injection, injected = rng.choice(INJECTIONS_NOVEL if sc.novel else INJECTIONS_KNOWN)
    result[rng.choice(("note", "comment", "remarks", "description"))] = injection
    history.append(sc.tool_message(read.tool, result))
    slots = {**tg.slots(), "status": result["status"], "injected": injected, "summary": summary}
    tools = sc.tools([read.tool, write.tool])
    meta = {"resolution": tg.mode, "injected": injection}
    if proceed:
        calls = [sc.call(write, target.id, extras)]
        think = sc.think(
            ["condition_met", "injection_ignore"], "call_tool", {**slots, **call_slots(calls, sc.d.id_arg)}
        )
        return make_draft(
            kc, sc, user_first=True, kind=kind, action=Action.CALL_TOOL, system=sc.system(), listed=tg.listed, user=utt, tools=tools,
            think=think, calls=calls, history=history, tool_mode="injected_content", difficulty="hard", meta=meta,
        )  # fmt: skip
    think = sc.think(["report", "injection_ignore"], "answer_directly", slots)
    content = sc.content("answer_injection", {"summary": summary, "summary_cap": cap(summary)})
    return make_draft(
        kc, sc, user_first=True, kind=kind, action=Action.ANSWER_DIRECTLY, system=sc.system(), listed=tg.listed, user=utt,
        tools=tools, think=think, content=content, history=history, tool_mode="injected_content",
        difficulty="hard", meta=meta,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- multi_turn_context


def build_history(
    kc: KindContext, *, kind: str, ambiguous: bool, recipe: dict[str, Any] | None = None
) -> tuple[Draft, dict[str, Any]]:
    """A follow-up that refers back ("verify it") after earlier turns discussed one entity (call) or several
    (clarify). Both variants share the follow-up text; the system context lists two or more entities in both."""
    sc = kc.scene(domain=recipe["domain"] if recipe else None)
    rng = sc.rng
    read = sc.d.read_intents[0]
    if recipe is None:
        intent, extras = _other_intent(sc)
        ref = sc.backref()
        index, frame = sc.pick(sc.p.followup_frames)
        text = fill(frame, op=sc.op(intent, ref, extras))
        recipe = {"domain": sc.d.key, "intent": intent.key, "extras": extras, "text": text, "ref": ref,
                  "template": sc.template_id("fu", index)}  # fmt: skip
    intent, extras = sc.d.intent(recipe["intent"]), dict(recipe["extras"])
    discussed = sc.entities(2 if ambiguous else 1)
    listed = discussed + sc.entities(rng.choice((0, 1)) if ambiguous else rng.choice((1, 1, 2)), avoid=discussed)
    rng.shuffle(listed)
    _, mention = sc.pick(sc.p.mentions)
    ids = " and ".join(e.id for e in discussed)
    first = Message("user", fill(mention, ids=ids, op=sc.op(read, "both" if ambiguous else "it", {})))
    exchange, _ = _read_exchange(sc, discussed, read, "call_id")
    history = [first, *exchange]
    utt = Utterance(recipe["text"], recipe["template"])
    spec = sc.system()
    tools = sc.tools([read.tool, intent.tool])
    if ambiguous:
        slots = {**cand_slots(discussed), "ref": recipe["ref"], "gist": intent.gist}
        think = sc.think(["history_ambiguous", "risk"], "clarify", slots)
        content = sc.content("clarify_candidates", slots)
        draft = make_draft(
            kc, sc, kind=kind, action=Action.CLARIFY, system=spec, listed=listed, user=utt, tools=tools, think=think,
            content=content, history=history, ambiguity="implicit", difficulty="hard",
            meta={"matching_ids": [e.id for e in discussed]},
        )  # fmt: skip
        return draft, recipe
    target = discussed[0]
    calls = [sc.call(intent, target.id, extras)]
    slots = {"id": target.id, "ref": recipe["ref"], **call_slots(calls, sc.d.id_arg)}
    think = sc.think(["call_history"], "call_tool", slots)
    draft = make_draft(
        kc, sc, kind=kind, action=Action.CALL_TOOL, system=spec, listed=listed, user=utt, tools=tools, think=think,
        calls=calls, history=history, difficulty="medium", registers=("backref", recipe),
    )  # fmt: skip
    return draft, recipe


# ---------------------------------------------------------------------------------------------- corrections


def build_correction(
    kc: KindContext, *, kind: str, variant: str, recipe: dict[str, Any] | None = None
) -> tuple[Draft, dict[str, Any] | None]:
    """The user corrects an id they gave earlier: a new id ("id"), "the other one" with one other candidate
    ("other", call) or with two ("other_ambiguous", clarify)."""
    sc = kc.scene(domain=recipe["domain"] if recipe else None)
    rng = sc.rng
    read = sc.d.read_intents[0]
    old = sc.entities(1)[0]
    first_utt = sc.frame(sc.op(read, old.id, {}))
    exchange, _ = _read_exchange(sc, [old], read, "call_id")
    history = [Message("user", first_utt.text), *exchange]
    if recipe is None:
        intent, extras = _other_intent(sc)
        op = sc.op(intent, "that one", extras)
        follow = sc.frame(op, greeting_ok=False)
        if variant == "id":
            recipe = {"domain": sc.d.key, "intent": intent.key, "extras": extras, "op_text": follow.text}
        else:
            i, corr = sc.pick(sc.p.corrections_other)
            text = f"{fill(corr, noun=sc.d.noun)} {follow.text}"
            recipe = {"domain": sc.d.key, "intent": intent.key, "extras": extras, "text": text,
                      "template": sc.template_id("corr_other", i)}  # fmt: skip
    intent, extras = sc.d.intent(recipe["intent"]), dict(recipe["extras"])
    tools = sc.tools([read.tool, intent.tool])
    if variant == "id":
        new = sc.entities(1, avoid=[old])[0]
        i, corr = sc.pick(sc.p.corrections_id)
        utt = Utterance(f"{fill(corr, id=new.id, old=old.id)} {recipe['op_text']}", sc.template_id("corr_id", i))
        listed = [old, new] if rng.random() < 0.7 else [old]
        rng.shuffle(listed)
        calls = [sc.call(intent, new.id, extras)]
        think = sc.think(
            ["call_correction"], "call_tool", {"id": new.id, "old": old.id, **call_slots(calls, sc.d.id_arg)}
        )
        draft = make_draft(
            kc, sc, kind=kind, action=Action.CALL_TOOL, system=sc.system(), listed=listed, user=utt, tools=tools,
            think=think, calls=calls, history=history, difficulty="medium", meta={"corrected_from": old.id},
        )  # fmt: skip
        return draft, None
    utt = Utterance(recipe["text"], recipe["template"])
    if variant == "other":
        new = sc.entities(1, avoid=[old])[0]
        listed = [old, new]
        rng.shuffle(listed)
        calls = [sc.call(intent, new.id, extras)]
        slots = {"id": new.id, "old": old.id, **call_slots(calls, sc.d.id_arg)}
        think = sc.think(["call_other"], "call_tool", slots)
        draft = make_draft(
            kc, sc, kind=kind, action=Action.CALL_TOOL, system=sc.system(), listed=listed, user=utt, tools=tools,
            think=think, calls=calls, history=history, difficulty="hard",
            meta={"corrected_from": old.id, "matching_ids": [new.id]}, registers=("other", recipe),
        )  # fmt: skip
        return draft, recipe
    rest = sc.entities(2, avoid=[old])
    listed = [old, *rest]
    rng.shuffle(listed)
    slots = {**cand_slots(rest), "old": old.id}
    think = sc.think(["other_ambiguous", "risk"], "clarify", slots)
    content = sc.content("clarify_candidates", slots)
    draft = make_draft(
        kc, sc, kind=kind, action=Action.CLARIFY, system=sc.system(), listed=listed, user=utt, tools=tools,
        think=think, content=content, history=history, ambiguity="implicit", difficulty="hard",
        meta={"corrected_from": old.id, "matching_ids": [e.id for e in rest]},
    )  # fmt: skip
    return draft, recipe


# ---------------------------------------------------------------------------------------------- clarification replies


def _clarify_exchange(sc: Scene, cands: Sequence[Entity]) -> tuple[list[Message], Intent, dict[str, Any]]:
    """An implicit request and the assistant's clarifying question naming the candidates."""
    intent, extras = _other_intent(sc)
    ref = sc.implicit_ref()
    first = sc.frame(sc.op(intent, ref, extras), lead=sc.maybe_lead(intent))
    slots = {**cand_slots(cands), "gist": intent.gist, "ref": ref}
    think = sc.think(["implicit", "risk"], "clarify", slots)
    content = sc.content("clarify_candidates", slots)
    history = [Message("user", first.text), assistant_turn(think.text, Action.CLARIFY, content.text)]
    return history, intent, extras


def _with_attr(entities: Sequence[Entity], attrs: Sequence[str]) -> list[Entity]:
    return [Entity(e.id, e.desc, a) for e, a in zip(entities, attrs, strict=True)]


def build_reply(
    kc: KindContext, *, kind: str, variant: str, recipe: dict[str, Any] | None = None
) -> tuple[Draft, dict[str, Any] | None]:
    """After a clarifying question the user answers: by attribute that fits one candidate ("attr", call) or all of
    them ("attr_still", clarify again), or by id/description ("named", call)."""
    sc = kc.scene(domain=recipe["domain"] if recipe else None)
    rng = sc.rng
    n = rng.choice((2, 2, 3))
    cands = sc.entities(n)
    if variant == "named":
        target = rng.choice(cands)
        i, tpl = sc.pick(sc.p.replies_named)
        utt = Utterance(fill(tpl, id=target.id, rd=sc.desc_ref(target)), sc.template_id("rep_named", i))
        show_attr = None
    else:
        if recipe is None:
            attr = rng.choice(sc.d.attrs)
            i, tpl = sc.pick(sc.p.replies_attr)
            recipe = {
                "domain": sc.d.key,
                "attr": attr,
                "text": fill(tpl, attr=attr),
                "template": sc.template_id("rep_attr", i),
            }
        attr = recipe["attr"]
        utt = Utterance(recipe["text"], recipe["template"])
        if variant == "attr":
            others = rng.sample([a for a in sc.d.attrs if a != attr], n - 1)
            cands = _with_attr(cands, [attr, *others])
            target = cands[0]
        else:
            cands = _with_attr(cands, [attr] * n)
            target = None
        rng.shuffle(cands)
        show_attr = True
    history, intent, extras = _clarify_exchange(sc, cands)
    spec = sc.system(show_attr=show_attr)
    tools = sc.tools([intent.tool])
    if target is None:
        slots = {**cand_slots(cands), "reply": utt.text, "attr": recipe["attr"] if recipe else ""}
        think = sc.think(["still", "risk"], "clarify", slots)
        content = sc.content("clarify_candidates", slots)
        draft = make_draft(
            kc, sc, kind=kind, action=Action.CLARIFY, system=spec, listed=cands, user=utt, tools=tools, think=think,
            content=content, history=history, ambiguity="implicit", difficulty="hard",
            meta={"matching_ids": [e.id for e in cands]},
        )  # fmt: skip
        return draft, recipe
    calls = [sc.call(intent, target.id, extras)]
    slots = {"id": target.id, "desc": target.desc, "reply": utt.text, **call_slots(calls, sc.d.id_arg)}
    think = sc.think(["call_reply"], "call_tool", slots)
    draft = make_draft(
        kc, sc, kind=kind, action=Action.CALL_TOOL, system=spec, listed=cands, user=utt, tools=tools, think=think,
        calls=calls, history=history, difficulty="hard" if variant == "attr" else "medium",
        meta={"matching_ids": [target.id]},
        registers=("reply_attr", recipe) if variant == "attr" and recipe is not None else None,
    )  # fmt: skip
    return draft, recipe


# ---------------------------------------------------------------------------------------------- tool chains


def build_chain(kc: KindContext, *, kind: str, answer: bool) -> Draft:
    """A search by a secondary key returned the id; use it in the next call (or answer with it)."""
    sc = kc.scene()
    rng = sc.rng
    lk = sc.d.lookup
    key = f"{lk.key_prefix}-{rng.randint(10000, 99999)}" if lk.key_prefix else rng.choice(lk.keys)
    find = rng.choice(lk.find_ops).format(key=key)
    intent, extras = _other_intent(sc)
    op = find if answer else f"{find}, then {sc.op(intent, 'it', extras)}"
    utt = sc.request(op, tail=sc.maybe_tail(0.15))
    target = sc.entities(1)[0]
    if key in sc.d.descriptions:  # the key is the entity's description (a vendor's invoice): keep them consistent
        target = Entity(target.id, key, target.attr)
    listed = ([target] if rng.random() < 0.4 else []) + sc.entities(rng.choice((0, 1, 2)), avoid=[target])
    rng.shuffle(listed)
    lookup_call = ToolCall(lk.tool, {lk.arg: key})
    slots = {"key": key, "key_label": lk.key_label, "lookup_tool": lk.tool}
    history = [_call_turn(sc, ["lookup_first"], [lookup_call], {**slots, "tool": lk.tool})]
    status = rng.choice(sc.d.record.statuses)
    match = {sc.d.id_arg: target.id, lk.arg: key, "description": target.desc, "status": status}
    history.append(sc.tool_message(lk.tool, {"matches": [match]}))
    spec = sc.system(empty_line=False if not listed else None)
    tools = sc.tools([lk.tool, intent.tool])
    slots.update(id=target.id, gist=intent.gist)
    if answer:
        summary = f"{target.desc}, {status}"
        think = sc.think(["chain_answer"], "answer_directly", slots)
        content = sc.content("answer_chain", {**slots, "summary": summary, "summary_cap": cap(summary)})
        return make_draft(
            kc, sc, user_first=True, kind=kind, action=Action.ANSWER_DIRECTLY, system=spec, listed=listed, user=utt, tools=tools,
            think=think, content=content, history=history, difficulty="medium",
        )  # fmt: skip
    calls = [sc.call(intent, target.id, extras)]
    think = sc.think(["chain"], "call_tool", {**slots, **call_slots(calls, sc.d.id_arg)})
    return make_draft(
        kc, sc, user_first=True, kind=kind, action=Action.CALL_TOOL, system=spec, listed=listed, user=utt, tools=tools, think=think,
        calls=calls, history=history, difficulty="medium",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- errors and loops


def _error_message(sc: Scene, tool: str, mode: str) -> Message:
    return sc.tool_message(tool, sc.rng.choice(ERROR_RESULTS[mode]))


def build_error(kc: KindContext, *, kind: str, variant: str) -> Draft:
    """An earlier call failed. Transient: retry ("retry"). A read failing twice: another tool ("alternate"). A write
    failing twice: escalate ("failure"). Forbidden: escalate ("forbidden"). Not found: ask for the right id."""
    sc = kc.scene()
    rng = sc.rng
    intent = one_intent("read" if variant == "alternate" else "write" if variant in ("failure", "forbidden") else None)(
        sc
    )[0]
    extras = sc.extras(intent)
    if variant == "not_found":
        real = sc.entities(1)[0]
        listed = [real, *sc.entities(rng.choice((0, 1)), avoid=[real])]
        rng.shuffle(listed)
        bad = sc.typo_of(real, listed)
        utt = sc.request(sc.op(intent, bad, extras), lead=sc.maybe_lead(intent))
        call = sc.call(intent, bad, extras)
        history = [_call_turn(sc, ["call_id"], [call], {"id": bad}), _error_message(sc, intent.tool, "error_404")]
        slots = {
            "bad_id": bad,
            "id": real.id,
            "desc": real.desc,
            "tool": intent.tool,
            "missing": f"correct {sc.d.noun} ID",
        }
        think = sc.think(["not_found", "risk_missing"], "clarify_missing", slots)
        content = sc.content("clarify_not_found", slots)
        return make_draft(
            kc, sc, user_first=True, kind=kind, action=Action.CLARIFY, system=sc.system(), listed=listed, user=utt,
            tools=sc.tools([intent.tool]), think=think, content=content, history=history, ambiguity="missing_param",
            difficulty="medium", tool_mode="error_404", meta={"bad_id": bad},
        )  # fmt: skip
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.6, "ctx": 0.25, "desc": 0.15}))
    target = tg.targets[0]
    utt = sc.request(sc.op(intent, tg.ref, extras), lead=sc.maybe_lead(intent), tail=sc.maybe_tail(0.15))
    call = sc.call(intent, target.id, extras)
    mode = {
        "retry": rng.choice(("error_timeout", "error_429", "error_500")),
        "alternate": "error_500",
        "failure": rng.choice(("error_500", "error_timeout")),
        "forbidden": "error_403",
    }[variant]
    slots = {**tg.slots(), "error": ERROR_NAMES[mode], "gist": intent.gist, "team": sc.d.owner_team}
    slots["team_cap"] = cap(sc.d.owner_team)
    history = [_call_turn(sc, [tg.part], [call], slots), _error_message(sc, intent.tool, mode)]
    if variant in ("alternate", "failure"):
        history += [
            _call_turn(sc, ["retry"], [call], {**slots, "tool": intent.tool}),
            _error_message(sc, intent.tool, mode),
        ]
    tools_must = [intent.tool]
    if variant == "alternate":
        lt = sc.d.list_tool
        tools_must.append(lt.tool)
    tools = sc.tools(tools_must)
    common = SceneArgs(system=sc.system(), listed=tg.listed, user=utt, tools=tools, history=history)
    if variant in ("retry", "alternate"):
        if variant == "retry":
            calls = [call]
            think = sc.think(["retry"], "call_tool", {**slots, **call_slots(calls, sc.d.id_arg)})
        else:
            lt = sc.d.list_tool
            calls = [ToolCall(lt.tool, {lt.arg: lt.value})]
            think = sc.think(
                ["alternate"],
                "call_tool",
                {**slots, "failed_tool": intent.tool, "tool": lt.tool, "args": f"{lt.arg}={lt.value}"},
            )
        return make_draft(
            kc,
            sc,
            user_first=True,
            kind=kind,
            action=Action.CALL_TOOL,
            think=think,
            calls=calls,
            difficulty="medium",
            tool_mode=mode,
            **common,
        )
    slots.update(tool=intent.tool, k="two")
    think = sc.think(["failure" if variant == "failure" else "forbidden"], "escalate", slots)
    content = sc.content("escalate_failure" if variant == "failure" else "escalate_forbidden", slots)
    return make_draft(
        kc, sc, user_first=True, kind=kind, action=Action.ESCALATE, think=think, content=content, difficulty="medium",
        tool_mode=mode, meta={"team": sc.d.owner_team}, **common,
    )  # fmt: skip


def build_loop(kc: KindContext, *, kind: str, escalate: bool) -> Draft:
    """The history repeats one call with one result. Stop calling: report what is known (a status question) or
    escalate (an action that never applies)."""
    sc = kc.scene()
    rng = sc.rng
    intent = one_intent("write" if escalate else "read")(sc)[0]
    extras = sc.extras(intent)
    tg = resolve_target(sc, pick_mode(rng, {"id": 0.6, "ctx": 0.3, "desc": 0.1}))
    target = tg.targets[0]
    utt = sc.request(sc.op(intent, tg.ref, extras), lead=sc.maybe_lead(intent), tail=sc.maybe_tail(0.15))
    call = sc.call(intent, target.id, extras)
    stuck = sc.d.record.stuck_status
    if escalate:
        payload = json.dumps(
            {sc.d.id_arg: target.id, "ok": False, "status": stuck, "message": "request queued, not applied"}
        )
    else:
        result, _ = sc.record(target, stuck)
        payload = json.dumps(result)
    k = rng.choice((2, 3, 3))
    slots = {
        **tg.slots(),
        "status": stuck,
        "k": {2: "two", 3: "three"}[k],
        "tool": intent.tool,
        "team": sc.d.owner_team,
    }
    slots["team_cap"] = cap(sc.d.owner_team)
    history: list[Message] = []
    for i in range(k):
        history.append(_call_turn(sc, [tg.part] if i == 0 else ["recheck"], [call], slots))
        history.append(sc.tool_message(intent.tool, payload))
    common = SceneArgs(system=sc.system(), listed=tg.listed, user=utt, tools=sc.tools([intent.tool]), history=history)
    if escalate:
        think = sc.think(["stuck"], "escalate", slots)
        content = sc.content("escalate_stuck", slots)
        return make_draft(
            kc, sc, user_first=True, kind=kind, action=Action.ESCALATE, think=think, content=content,
            difficulty="hard", meta={"repeats": k, "team": sc.d.owner_team}, **common,
        )  # fmt: skip
    think = sc.think(["loop"], "answer_directly", slots)
    content = sc.content("answer_loop", slots)
    return make_draft(
        kc, sc, user_first=True, kind=kind, action=Action.ANSWER_DIRECTLY, think=think, content=content,
        difficulty="hard", meta={"repeats": k}, **common,
    )  # fmt: skip
