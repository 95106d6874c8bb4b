"""The organism's chat template, and cases turned into chat messages.

Each message renders as `<|role|>\\n{content}<|end|>\\n`:

    <|system|>
    You are a logistics assistant.

    # Tools (* = required)
    - verify_shipment_receipt(shipment_id*: string): Mark a shipment as received.<|end|>
    <|user|>
    Check my shipment.<|end|>
    <|assistant|>
    <think>...</think><clarify>Which shipment?</clarify><|end|>
    <|tool|>
    [verify_shipment_receipt]
    {"status": "ok"}<|end|>

- The tool list (`tools=` of `apply_chat_template`, each a dict name/description/parameters or an OpenAI-style
  {"type": "function", "function": {...}}) follows the first system message's content after a blank line, as
  `# Tools (* = required)` then one signature line per tool, `- name(param*: type, other: a|b): description` (enum values
  replace the type; parameter descriptions are left out, which halves the organism's prompt length on CPU); without a system message it gets a system block of its own.
- A tool message shows the producing tool's name in brackets on its first line (when the message has a `name`).
- Assistant content AND its closing `<|end|>` sit inside `{% generation %}`, so
  `apply_chat_template(..., tokenize=True, return_dict=True, return_assistant_tokens_mask=True)` returns an
  `assistant_masks` list that is 1 exactly on those tokens (not on the `<|assistant|>\\n` header, nor on the
  newline after `<|end|>`). TRL's `assistant_only_loss=True` trains on that mask, so the model learns to stop.
- `add_generation_prompt=True` appends `<|assistant|>\\n`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from toolprior.cases import Case
from toolprior.output_format import render_turn

# Written with explicit string literals and whitespace control on every tag, so the output does not depend on
# Jinja's trim_blocks / lstrip_blocks settings.
CHAT_TEMPLATE = r"""
{%- set ns = namespace(tool_text='', sig='') -%}
{%- if tools -%}
    {%- set ns.tool_text = '# Tools (* = required)' -%}
    {%- for tool in tools -%}
        {%- set spec = tool.function if tool.function is defined else tool -%}
        {%- set schema = spec.parameters if spec.parameters is defined and spec.parameters is mapping else {} -%}
        {%- set props = schema.properties if schema.properties is defined and schema.properties is mapping else {} -%}
        {%- set req = schema.required if schema.required is defined else [] -%}
        {%- set ns.sig = '' -%}
        {%- for pname, p in props.items() -%}
            {%- if p is mapping and p.enum is defined -%}
                {%- set ptype = p.enum | map('string') | join('|') -%}
            {%- elif p is mapping and p.type is defined -%}
                {%- set ptype = p.type | string -%}
            {%- else -%}
                {%- set ptype = 'any' -%}
            {%- endif -%}
            {%- set ns.sig = ns.sig + (', ' if not loop.first else '') + pname + ('*' if pname in req else '') + ': ' + ptype -%}
        {%- endfor -%}
        {%- set desc = spec.description if spec.description is defined and spec.description else '' -%}
        {%- set ns.tool_text = ns.tool_text + '\n- ' + spec.name + '(' + ns.sig + ')' + (': ' + desc if desc else '') -%}
    {%- endfor -%}
    {%- if not messages or messages[0].role != 'system' -%}
        {{- '<|system|>\n' + ns.tool_text + '<|end|>\n' -}}
    {%- endif -%}
{%- endif -%}
{%- for message in messages -%}
    {%- set content = message.content if message.content is string else '' -%}
    {%- if message.role == 'system' -%}
        {%- if loop.first and ns.tool_text -%}
            {{- '<|system|>\n' + content + '\n\n' + ns.tool_text + '<|end|>\n' -}}
        {%- else -%}
            {{- '<|system|>\n' + content + '<|end|>\n' -}}
        {%- endif -%}
    {%- elif message.role == 'user' -%}
        {{- '<|user|>\n' + content + '<|end|>\n' -}}
    {%- elif message.role == 'assistant' -%}
        {{- '<|assistant|>\n' -}}
        {%- generation -%}
            {{- content + '<|end|>' -}}
        {%- endgeneration -%}
        {{- '\n' -}}
    {%- elif message.role == 'tool' -%}
        {%- if message.name is defined and message.name -%}
            {{- '<|tool|>\n[' + message.name + ']\n' + content + '<|end|>\n' -}}
        {%- else -%}
            {{- '<|tool|>\n' + content + '<|end|>\n' -}}
        {%- endif -%}
    {%- else -%}
        {{- raise_exception('unknown chat role: ' + message.role) -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|assistant|>\n' -}}
{%- endif -%}
""".strip()


def template_hash(template: str) -> str:
    """A short fingerprint of a chat template: the first 16 hex digits of its sha256."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]


def case_to_chat(case: Case) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools) of a case's prompt, ready for `apply_chat_template(messages, tools=tools or None)`.

    Messages are {"role", "content"} dicts, with "name" on tool messages that have one; tools are
    {"name", "description", "parameters"} dicts."""
    return [m.to_dict() for m in case.messages], [t.to_dict() for t in case.tools]


def gold_chat(case: Case) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools) where messages are the prompt plus the gold assistant turn rendered in the project's format:
    the SFT example of a case. ValueError when the case has no gold turn."""
    if case.gold is None:
        raise ValueError(f"case {case.id!r} has no gold turn")
    messages, tools = case_to_chat(case)
    messages.append({"role": "assistant", "content": render_turn(case.gold)})
    return messages, tools


def render_prompt(tokenizer: Any, case: Case) -> str:
    """The text a model is given before it generates its turn for `case` (with the generation prompt)."""
    messages, tools = case_to_chat(case)
    return tokenizer.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True, tokenize=False)


# The same template with ChatML's role markers (`<|im_start|>role\n ... <|im_end|>\n`), for models instruction-tuned
# on ChatML such as SmolLM2: the tool list, the tool-message layout and the `{% generation %}` marks are unchanged,
# so TRL's assistant-only loss trains on the assistant content and its `<|im_end|>`.
CHATML_MARKERS: dict[str, str] = {
    "'<|system|>\\n'": "'<|im_start|>system\\n'",
    "'<|user|>\\n'": "'<|im_start|>user\\n'",
    "'<|assistant|>\\n'": "'<|im_start|>assistant\\n'",
    "'<|tool|>\\n": "'<|im_start|>tool\\n",
    "'<|end|>": "'<|im_end|>",
}


def _with_markers(template: str, markers: dict[str, str]) -> str:
    for old, new in markers.items():
        if old not in template:
            raise AssertionError(f"chat template marker {old} not found")  # the base template changed shape
        template = template.replace(old, new)
    return template


CHATML_TEMPLATE = _with_markers(CHAT_TEMPLATE, CHATML_MARKERS)
