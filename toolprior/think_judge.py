"""What a think block argues for: the rule-based think judge shared by forensics, the guardrail and pair mining.

Think classification
--------------------
A `ThinkJudge` maps a think block (and optionally its case) to the action it argues for, or None when it argues
for nothing clear. `RuleThinkJudge` is the default; `ModelThinkJudge` asks a causal LM instead.

`RuleThinkJudge` rules:

- Text is split into sentences (`.`, `!`, `?` followed by whitespace, or a line break) and each sentence into
  scopes at `,` `;` `:` `(` `)` and at the words but / so / then / however / therefore / since / because / before /
  after / until / once / instead / whereas / although. A "?" sentence is deliberation: all its cues are hedged.
- Weighted cues (regexes, `CUES`) per action: clarify ("ask the user which", "need to clarify", "which one",
  "not specified", "didn't specify", "ambiguous", "two ... match", "missing", a bare "ask" with the agent as its
  subject: "I'll ask"), escalate ("escalate", "hand off", "exceeds my authority", "human agent", "manager
  approval"), refuse ("cannot share", "against policy", "must refuse", "not allowed", "prohibited"),
  answer_directly ("I can answer", "no tool is needed", "from the policy", "answer directly"), call_tool ("I'll
  call", "call the ... tool", "use get_...", "look up", and an action verb (verify, fetch, process, ...) with the
  agent as its subject: "I could verify both", "I'll verify SHP-1030 now"). Tool names of the case (when given)
  count as call_tool cues when the agent is their subject. Overlapping cues of one action count once.
- Negation: a cue is dropped when its scope, in the 8 words before it, holds a negator (no, not, never, cannot,
  n't, without, nothing, none, neither, nor, instead of, rather than, unnecessary): "no need to ask", "I don't need
  to clarify", "there is no ambiguity", "I should not call a tool". Phrases of uncertainty (not sure, not clear,
  didn't specify, not provided, without knowing, ...) are not negators: "I'm not sure which one" still counts for
  clarify. A cue that contains its own negation ("not allowed", "no tool is needed", "cannot share") matches whole.
- Modality: the nearest modal marker before a cue in its scope (or inside the cue) sets its weight:
  commit (should, must, need to, have to, will, 'll, going to, let me, best, right action, so, therefore, thus,
  hence, proceed, decide) x2; hedge (could, might, may, maybe, perhaps, possibly, alternatively, or, either,
  option, would, wonder) x0.5; none x1. A sentence opening with a conclusion marker (So, Therefore, Thus, Hence,
  In conclusion, Overall, Finally, Decision, The best/right/correct action) makes its unmarked cues committed.
- Decision, "the last clear conclusion": the deciding sentence is the LAST sentence holding a committed cue; the
  verdict is the action with the largest summed weight of committed cues in that sentence (hedged and unmarked
  cues there do not count). A tie in that sentence goes to the action of its later committed cue. So the case
  study's "I should ask for clarification about which specific shipment ..., or I could verify both shipments"
  argues clarify: "should ask" is a committed conclusion, "could verify" a hedged alternative. A later committed
  sentence overrides an earlier one ("I should ask which one. Actually the user named SHP-1030, so I'll verify
  it now." argues call_tool).
- Without any committed cue, the cue weights of all sentences are summed, the last sentence counting double; a
  unique maximum wins when at least one of its cues is unmarked (evidence alone, "The user didn't specify which
  shipment. Two shipments match.", argues clarify). A tie, no cue at all, or a winner made only of hedged cues
  (pure deliberation: "Should I ask or call the tool?") gives None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from toolprior.actions import ACTION_NAMES, Action
from toolprior.cases import Case

CALL_TOOL = Action.CALL_TOOL.value

# ------------------------------------------------------------------------------------------------ sentence splitting

_SENT_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of `text`, in order, stripped of surrounding whitespace; empty pieces
    are dropped. A sentence ends at `.`, `!` or `?` followed by whitespace, or at a line break."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENT_END_RE.finditer(text):
        _add_span(text, pos, m.start(), spans)
        pos = m.end()
    _add_span(text, pos, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    if not piece.strip():
        return
    lead = len(piece) - len(piece.lstrip())
    trail = len(piece) - len(piece.rstrip())
    spans.append((start + lead, end - trail))


# ----------------------------------------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class Cue:
    """One phrase pattern that argues for `action` with `weight`. `needs_agent`: the cue counts only when the agent
    itself is the subject in its scope ("I", "let me", "we", "go ahead and", "proceed to" before it)."""

    action: str
    pattern: str
    weight: float = 1.0
    needs_agent: bool = False


_ACTION_VERBS = (
    r"verify|look up|fetch|retrieve|query|search|process|cancel|update|submit|create|book|issue|send|approve|"
    r"pull up|call|invoke|execute|check the status|reset|refund|schedule|delete"
)

CUES: tuple[Cue, ...] = (
    # clarify
    Cue(
        "clarify",
        r"\bask (?:the user|the customer|them|him|her|for clarification|for more|for (?:the|their) \w+|"
        r"which|whether|what|who)\b",
        2.0,
    ),
    Cue("clarify", r"\bclarif(?:y|ying|ication|ications)\b", 2.0),
    Cue("clarify", r"\bask\b", 1.5, needs_agent=True),
    Cue("clarify", r"\b(?:confirm|check) with (?:the user|the customer|them)\b", 2.0),
    Cue("clarify", r"\bwhich (?:one|specific|of (?:the|them|these|those))\b", 1.0),
    Cue(
        "clarify",
        r"\bwhich \w+(?: \w+)? (?:they|the user|the customer|he|she) (?:mean|means|meant|want|wants|refer)",
        1.0,
    ),
    Cue(
        "clarify",
        r"(?:\bnot|\bnever|n't) (?:specified|specify|specifying|provided|provide|mentioned|mention|given|"
        r"give|say|said|indicate|indicated|tell|told|sure|clear|certain|know)\b",
        1.0,
    ),
    Cue("clarify", r"\bunclear\b|\bunspecified\b|\bambigu\w*", 1.0),
    Cue(
        "clarify",
        r"\b(?:two|both|multiple|several|more than one|three)\b[^.;]{0,40}?\b(?:match\w*|pending|"
        r"candidates?|possible|options|open|records|accounts|orders|shipments|tickets)\b",
        1.0,
    ),
    Cue("clarify", r"\bmissing\b|\bnot provided\b", 1.0),
    # escalate
    Cue("escalate", r"\bescalat\w*", 2.0),
    Cue(
        "escalate",
        r"\bhand(?:ing|ed)? (?:it |this |the case |the request )?off\b|\bhandoff\b|"
        r"\bhand (?:it|this|the case) (?:over|to)\b",
        2.0,
    ),
    Cue(
        "escalate",
        r"\b(?:exceeds?|exceeding|beyond|outside) (?:my|the agent's) (?:authority|permissions?|limits?|"
        r"scope|mandate)\b",
        2.0,
    ),
    Cue("escalate", r"\bhuman (?:agent|reviewer|review|operator|support|team|specialist)\b|\bto a human\b", 2.0),
    Cue("escalate", r"\b(?:manager|supervisor)(?:'s)? (?:approval|sign-off|review)\b|\bsupervisor\b", 1.0),
    Cue("escalate", r"\broute (?:this|it|the case) to\b|\btransfer (?:this|it|the case) to\b", 1.0),
    # refuse
    Cue(
        "refuse",
        r"\b(?:cannot|can't|can not|won't|will not|unable to) (?:share|disclose|reveal|give out|hand over|"
        r"help with this)\b",
        2.0,
    ),
    Cue("refuse", r"\bagainst (?:the |our |company |data )?polic(?:y|ies)\b|\bviolat\w+", 2.0),
    Cue("refuse", r"\brefus\w*|\bdecline\b", 2.0),
    Cue("refuse", r"\bnot (?:allowed|permitted)\b|\bprohibited\b|\bforbidden\b|\bnot authori[sz]ed to share\b", 2.0),
    Cue("refuse", r"\bconfidential\b", 1.0),
    # answer_directly
    Cue(
        "answer_directly",
        r"\bI can answer\b|\bcan be answered\b|\banswer (?:this |it |that )?(?:directly|myself|"
        r"from)\b|\bdirect answer\b|\brespond directly\b|\banswer_directly\b",
        2.0,
    ),
    Cue(
        "answer_directly",
        r"\bno tools? (?:call )?(?:is |are )?(?:needed|required|necessary)\b|"
        r"\b(?:don't|do not|doesn't|does not) (?:need|require) (?:a |any )?(?:tools?|to call (?:a|any) tools?)\b|"
        r"\bwithout (?:a |any )?tools?\b",
        2.0,
    ),
    Cue(
        "answer_directly",
        r"\bfrom (?:the |our )?(?:policy|policies|context|documentation|system prompt|"
        r"knowledge base|guidelines|what I know)\b",
        1.0,
    ),
    Cue(
        "answer_directly",
        r"\balready (?:know|have) the (?:answer|information)\b|\bgeneral (?:question|knowledge)\b",
        2.0,
    ),
    # call_tool
    Cue("call_tool", r"\b(?:call|use|invoke|run)(?:ing)? (?:the |a |an )?(?:\w+ )?(?:tool|[a-z][a-z0-9]*_\w+)\b", 2.0),
    Cue("call_tool", r"\bcall_tool\b|\btool call\b", 2.0),
    Cue("call_tool", r"\b(?:look(?:ing)? up|fetch|retrieve|query|pull up)\b", 1.5),
    Cue("call_tool", r"\b(?:" + _ACTION_VERBS + r")\b", 1.5, needs_agent=True),
    Cue("call_tool", r"\bproceed with (?:the )?(?:call|tool|request|lookup|verification)\b", 1.5),
)

_COMPILED = tuple((cue, re.compile(cue.pattern, re.IGNORECASE)) for cue in CUES)

_BOUNDARY_RE = re.compile(
    r"[,;:()]|\b(?:but|so|then|however|therefore|since|because|before|after|until|once|instead|whereas|although)\b",
    re.IGNORECASE,
)
_BOUNDARY_WORDS_KEEP = re.compile(r"\b(?:so|therefore)\b", re.IGNORECASE)  # boundary words that are also markers
_NEGATOR_RE = re.compile(
    r"\b(?:no|not|never|cannot|without|nothing|none|neither|nor|unnecessary)\b|n't\b|\binstead of\b|\brather than\b",
    re.IGNORECASE,
)
_UNCERTAINTY_RE = re.compile(
    r"\b(?:not|n't|never) (?:sure|clear|certain|specified|specify|provided|provide|mentioned|mention|given|give|"
    r"say|said|indicate|indicated|tell|told|know)\b|n't (?:sure|clear|certain|specified|specify|provided|provide|"
    r"mentioned|mention|given|give|say|said|indicate|tell|know)\b|\bwithout knowing\b|\bnot yet\b",
    re.IGNORECASE,
)
_COMMIT_RE = re.compile(
    r"\b(?:should|must|need to|needs to|have to|has to|will|going to|let me|best|right (?:action|move|call|thing)|"
    r"correct action|so|therefore|thus|hence|proceed|decide|decided)\b|'ll\b",
    re.IGNORECASE,
)
_HEDGE_RE = re.compile(
    r"\b(?:could|might|may|maybe|perhaps|possibly|alternatively|or|either|option|would|wonder)\b", re.IGNORECASE
)
_CONCLUSION_START_RE = re.compile(
    r"^(?:so|therefore|thus|hence|in conclusion|overall|finally|decision|final answer|the (?:best|right|correct) "
    r"(?:action|move|option|thing))\b",
    re.IGNORECASE,
)
_AGENT_RE = re.compile(r"\b(?:I|let me|we|go ahead and|proceed to)\b", re.IGNORECASE)
_WORDS_BACK = 8
COMMIT, NEUTRAL, HEDGE = "commit", "neutral", "hedge"
MODALITY_WEIGHT = {COMMIT: 2.0, NEUTRAL: 1.0, HEDGE: 0.5}


def _normalize(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


@dataclass(frozen=True)
class CueMatch:
    """One cue found in a think: where, what, with which modality and weight, and whether negation dropped it."""

    action: str
    text: str
    start: int
    sentence: int
    modality: str
    weight: float
    negated: bool


@dataclass(frozen=True)
class ThinkAnalysis:
    """What `RuleThinkJudge.analyze` found. `action` is the verdict (None: nothing clear); `sentence` the index of
    the deciding sentence (None when the verdict came from the evidence sum or there is none); `margin` how far
    the winner led the runner-up (0 when there is no verdict); `committed` whether a committed conclusion decided."""

    action: str | None
    sentence: int | None
    margin: float
    committed: bool
    sentences: tuple[tuple[int, int], ...]
    matches: tuple[CueMatch, ...]


@runtime_checkable
class ThinkJudge(Protocol):
    """Says which action a think block argues for (an action name from ACTION_NAMES), or None when it argues for
    nothing clear. `case` may be None."""

    def __call__(self, think: str, case: Case | None = None) -> str | None: ...


def _scope_start(sentence_text: str, pos: int) -> int:
    """Start (in the sentence) of the scope holding position `pos`: after the last boundary before it. A boundary
    word that is itself a marker (so, therefore) stays in the scope."""
    start = 0
    for m in _BOUNDARY_RE.finditer(sentence_text, 0, pos):
        if m.end() > pos:
            break
        start = m.start() if _BOUNDARY_WORDS_KEEP.fullmatch(m.group(0)) else m.end()
    return start


def _last_words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[-n:]) if words else ""


def _nearest(regex: re.Pattern[str], text: str) -> int:
    """End position of the last match of `regex` in `text` (-1 when none)."""
    last = -1
    for m in regex.finditer(text):
        last = m.end()
    return last


class RuleThinkJudge:
    """The rule-based think judge (rules in the module docstring). `extra_cues` add to (not replace) `CUES`."""

    def __init__(self, extra_cues: Sequence[Cue] = ()) -> None:
        self._cues = _COMPILED + tuple((c, re.compile(c.pattern, re.IGNORECASE)) for c in extra_cues)

    def __call__(self, think: str, case: Case | None = None) -> str | None:
        return self.analyze(think, case).action

    def _tool_cues(self, case: Case | None) -> tuple[tuple[Cue, re.Pattern[str]], ...]:
        if case is None or not case.tools:
            return ()
        names = sorted({t.name for t in case.tools if t.name}, key=len, reverse=True)
        pattern = r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b"
        cue = Cue(CALL_TOOL, pattern, 1.5, needs_agent=True)
        return ((cue, re.compile(pattern, re.IGNORECASE)),)

    def matches(self, think: str, case: Case | None = None) -> tuple[tuple[tuple[int, int], ...], list[CueMatch]]:
        """(sentence spans, every cue match in order of position, negated ones included)."""
        text = _normalize(think or "")
        spans = tuple(split_sentences(text))
        cues = self._cues + self._tool_cues(case)
        found: list[CueMatch] = []
        for si, (s0, s1) in enumerate(spans):
            sent = text[s0:s1]
            question = sent.rstrip().endswith("?")
            conclusion = bool(_CONCLUSION_START_RE.match(sent))
            taken: list[tuple[int, int, str]] = []
            for cue, rx in cues:
                for m in rx.finditer(sent):
                    # The same action's overlapping cues count once (the first, strongest listed, wins).
                    if any(a == cue.action and m.start() < e and s < m.end() for s, e, a in taken):
                        continue
                    scope = sent[_scope_start(sent, m.start()) : m.start()]
                    if cue.needs_agent and not _AGENT_RE.search(_last_words(scope, _WORDS_BACK)):
                        continue
                    window = _last_words(scope, _WORDS_BACK)
                    negated = bool(_NEGATOR_RE.search(_UNCERTAINTY_RE.sub(" ", window)))
                    marked = window + " " + m.group(0)
                    commit_at, hedge_at = _nearest(_COMMIT_RE, marked), _nearest(_HEDGE_RE, marked)
                    if question:
                        modality = HEDGE
                    elif commit_at < 0 and hedge_at < 0:
                        modality = COMMIT if conclusion else NEUTRAL
                    else:
                        modality = COMMIT if commit_at > hedge_at else HEDGE
                    taken.append((m.start(), m.end(), cue.action))
                    found.append(
                        CueMatch(
                            action=cue.action,
                            text=m.group(0),
                            start=s0 + m.start(),
                            sentence=si,
                            modality=modality,
                            weight=cue.weight * MODALITY_WEIGHT[modality],
                            negated=negated,
                        )
                    )
        found.sort(key=lambda c: (c.start, c.action))
        return spans, found

    def analyze(self, think: str, case: Case | None = None) -> ThinkAnalysis:
        """The verdict with its evidence (see the module docstring for the decision rule)."""
        spans, found = self.matches(think, case)
        live = [c for c in found if not c.negated]
        committed = [c for c in live if c.modality == COMMIT]
        if committed:
            deciding = max(c.sentence for c in committed)
            in_sentence = [c for c in committed if c.sentence == deciding]
            totals: dict[str, float] = {}
            for c in in_sentence:
                totals[c.action] = totals.get(c.action, 0.0) + c.weight
            best = max(totals.values())
            top = [a for a, w in totals.items() if w == best]
            # A tie goes to the action of the later committed cue.
            action = top[0] if len(top) == 1 else next(c.action for c in reversed(in_sentence) if c.action in top)
            runner = max((w for a, w in totals.items() if a != action), default=0.0)
            return ThinkAnalysis(action, deciding, best - runner, True, spans, tuple(found))
        last = len(spans) - 1
        totals = {}
        for c in live:
            totals[c.action] = totals.get(c.action, 0.0) + c.weight * (2.0 if c.sentence == last else 1.0)
        if not totals:
            return ThinkAnalysis(None, None, 0.0, False, spans, tuple(found))
        ranked = sorted(totals.values(), reverse=True)
        action = max(totals, key=lambda a: totals[a])
        tie = len(ranked) > 1 and ranked[0] == ranked[1]
        if tie or not any(c.action == action and c.modality == NEUTRAL for c in live):
            return ThinkAnalysis(None, None, 0.0, False, spans, tuple(found))
        sentence = max(c.sentence for c in live if c.action == action)
        margin = ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)
        return ThinkAnalysis(action, sentence, margin, False, spans, tuple(found))


# ------------------------------------------------------------------------------------------------- the model judge

MODEL_JUDGE_OPTIONS: tuple[str, ...] = (*ACTION_NAMES, "none")

MODEL_JUDGE_PROMPT = (
    "Below is the private reasoning of an AI agent that must choose exactly one action.\n"
    "Actions:\n"
    "call_tool: call one of its tools\n"
    "answer_directly: answer the user without a tool\n"
    "clarify: ask the user a clarifying question\n"
    "escalate: hand the case to a human\n"
    "refuse: decline the request\n"
    "none: the reasoning argues for no clear action\n"
    "\n"
    "Reasoning: {think}\n"
    "\n"
    "Which action does the reasoning argue for?\n"
    "Answer:"
)
