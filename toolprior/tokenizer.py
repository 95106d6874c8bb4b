"""The organism's tokenizer: a byte-level BPE trained with the `tokenizers` library, wrapped for transformers.

Two kinds of added tokens, both single ids that BPE never splits:

- `SPECIAL_TOKENS` (role markers, `<|end|>`, `<|pad|>`, `<|endoftext|>`) are special in Hugging Face's sense:
  `decode(ids, skip_special_tokens=True)` drops them.
- `FORMAT_TOKENS` (`<think>`, `</think>`, `<tool_call>`, ... `</refuse>`) are added tokens that are NOT special, so
  decoding keeps them even with `skip_special_tokens=True` and generated text parses with
  `toolprior.output_format.parse_turn` whatever the caller passes. (Marking them special would make the usual
  `skip_special_tokens=True` silently delete the whole action structure.)

Ids: the special tokens are 0..6 in `SPECIAL_TOKENS` order, the BPE vocabulary (256 byte symbols, then merges)
follows, and the format tokens take the last `len(FORMAT_TOKENS)` ids, so `len(tokenizer) == vocab_size`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from toolprior.actions import ACTION_TAGS, Action
from toolprior.chat_template import CHAT_TEMPLATE
from toolprior.output_format import THINK_CLOSE

ROLE_TOKENS: dict[str, str] = {
    "system": "<|system|>",
    "user": "<|user|>",
    "assistant": "<|assistant|>",
    "tool": "<|tool|>",
}
END_OF_TURN = "<|end|>"
PAD = "<|pad|>"
END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (*ROLE_TOKENS.values(), END_OF_TURN, PAD, END_OF_TEXT)

FORMAT_TOKENS: tuple[str, ...] = tuple(
    tok for tag in ("think", *ACTION_TAGS.values()) for tok in (f"<{tag}>", f"</{tag}>")
)

# 256 byte symbols plus the added tokens must fit.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS) + len(FORMAT_TOKENS)

_ADDED_RE = re.compile("|".join(re.escape(t) for t in (*SPECIAL_TOKENS, *FORMAT_TOKENS)))


def _pieces(texts: Iterable[str]) -> Iterator[str]:
    """The texts with every added token cut out: BPE merges are learned only from the text between them."""
    for text in texts:
        for piece in _ADDED_RE.split(text):
            if piece:
                yield piece


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Any:
    """Train the organism's byte-level BPE on `texts`; return a `transformers.PreTrainedTokenizerFast`.

    ByteLevel pre-tokenizer (no prefix space) and decoder, with all 256 bytes in the alphabet, so any Unicode
    string round-trips through encode/decode. Pad `<|pad|>`, eos `<|end|>`, left padding, the organism's chat
    template. The same texts give the same tokenizer (byte for byte once saved)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + added tokens), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(FORMAT_TOKENS),
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_pieces(texts), trainer=trainer)
    # Format tokens go in after training, as non-special added tokens (see the module docstring).
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=END_OF_TURN,
        pad_token=PAD,
        extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in (END_OF_TURN, PAD)],
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=CHAT_TEMPLATE,
    )


def add_format_tokens(tokenizer: Any) -> int:
    """Add FORMAT_TOKENS to a real model's tokenizer as non-special added tokens; return how many were new.

    Resize the model's embeddings afterwards (`model.resize_token_embeddings(len(tokenizer))`) when this is > 0."""
    from tokenizers import AddedToken

    return tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])


def action_tag_token_ids(tokenizer: Any) -> dict[Action, int]:
    """The first token id of each action's opening tag (`<tool_call>`, `<clarify>`, ...) as it is tokenized right
    after `</think>`: the logits the prior's gap is read from.

    On the organism each tag is one token. On a real model (e.g. Qwen3) it is the first token of the tag's encoding
    after `</think>`; when two actions share that first token (a bare `<` for tags the vocabulary does not know) the
    gap is meaningless, and this raises ValueError: add the tags with `add_format_tokens` first."""
    prefix = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    ids: dict[Action, int] = {}
    for action, tag in ACTION_TAGS.items():
        full = tokenizer.encode(f"{THINK_CLOSE}<{tag}>", add_special_tokens=False)
        if full[: len(prefix)] == prefix and len(full) > len(prefix):
            ids[action] = full[len(prefix)]
        else:  # `</think>` merged with the tag: fall back to the tag alone
            ids[action] = tokenizer.encode(f"<{tag}>", add_special_tokens=False)[0]
    seen: dict[int, Action] = {}
    for action, token_id in ids.items():
        if token_id in seen:
            raise ValueError(
                f"actions {seen[token_id].value} and {action.value} start with the same token id {token_id}; "
                "add the format tags as tokens (toolprior.tokenizer.add_format_tokens) before reading the prior"
            )
        seen[token_id] = action
    return ids
