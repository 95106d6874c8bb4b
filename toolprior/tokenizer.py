"""The organism's tokenizer: a byte-level BPE trained with the `tokenizers` library, wrapped for transformers.

Two kinds of added tokens, both single ids that BPE never splits:

- `SPECIAL_TOKENS` (role markers, `<|end|>`, `<|pad|>`, `<|endoftext|>`) are special in Hugging Face's sense:
  `decode(ids, skip_special_tokens=True)` drops them.
- `FORMAT_TOKENS` (`<think>`, `</think>`, `<tool_call>`, ... `</refuse>`) are added tokens that are NOT special, so
  decoding keeps them even with `skip_special_tokens=True` and generated text parses with
  `toolprior.output_format.parse_turn` whatever the caller passes. (Marking them special would make the usual
  `skip_special_tokens=True` silently delete the whole action structure.)

Ids: the special tokens are 0..6 in `SPECIAL_TOKENS` order, the BPE vocabulary (256 byte symbols, then merges)
follows, and the format tokens added (all of them unless `train_tokenizer(format_tokens=...)` says otherwise) take
the last ids, so `len(tokenizer) == vocab_size`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from toolprior.actions import ACTION_TAGS, Action
from toolprior.chat_template import CHAT_TEMPLATE
from toolprior.decision_point import decision_tokens

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


def _added_re(added: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in added))


def _pieces(texts: Iterable[str], added: re.Pattern[str]) -> Iterator[str]:
    """The texts with every added token cut out: BPE merges are learned only from the text between them."""
    for text in texts:
        for piece in added.split(text):
            if piece:
                yield piece


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 4096, *, format_tokens: Sequence[str] = FORMAT_TOKENS
) -> Any:
    """Train the organism's byte-level BPE on `texts`; return a `transformers.PreTrainedTokenizerFast`.

    ByteLevel pre-tokenizer (no prefix space) and decoder, with all 256 bytes in the alphabet, so any Unicode
    string round-trips through encode/decode. Pad `<|pad|>`, eos `<|end|>`, left padding, the organism's chat
    template. The same texts give the same tokenizer (byte for byte once saved).

    `format_tokens`: the format tags added as single tokens (all of FORMAT_TOKENS by default). Pass fewer (e.g.
    only `<think>`, `</think>`) to get a vocabulary that splits the action tags into BPE pieces, as a real model's
    does before `add_format_tokens`; the text of tags not added is then learned from like any other."""
    # lazy: tokenizers and transformers load only when a tokenizer is built (configs import this module to read names)
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + added tokens), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(format_tokens),
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_pieces(texts, _added_re((*SPECIAL_TOKENS, *format_tokens))), trainer=trainer)
    # Format tokens go in after training, as non-special added tokens (see the module docstring).
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in format_tokens])

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
    # lazy: tokenizers and transformers load only when a tokenizer is built (configs import this module to read names)
    from tokenizers import AddedToken

    return tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])


def action_tag_token_ids(tokenizer: Any) -> dict[Action, int]:
    """Each action's decision token: the token after the shared prefix P of the `</think><tag>` encodings, whose
    logit at the decision position (P's last token) the prior's gap is read from (`toolprior.decision_point`).

    On the organism each tag is one token and this is the tag's own id. On a vocabulary that splits the tags (all
    start with `<`) it is the first token where they differ (`tool`, `cl`, ...). Raises ValueError when two actions
    share it: the gap between them is meaningless; add the tags with `add_format_tokens` first."""

    return dict(decision_tokens(tokenizer).per_action)
