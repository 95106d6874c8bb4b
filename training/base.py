"""The tiny base recipe: a byte-level BPE tokenizer and a small decoder pre-trained from scratch on synthetic
enterprise text, so that SFT shapes behaviour on top of a model that already knows the domain's words.

The pre-training corpus is prose drawn from benchmark cases generated with a seed of its own (never the train or
eval cases): system contexts, user requests, tool descriptions, tool results and reasoning; and a "format primer"
of think and action blocks cut loose from their situations, so the base knows the tags' tokens. It holds no whole
agent transcript by default: which action fits which situation is left entirely to SFT, where the case study's
skewed 40/23/15/13/10 mix arrives, so the call-tool prior can only come from there. (`transcripts=True` adds
transcripts drawn with a BALANCED action mix, a base that has seen agent work without a frequency prior.)

The schedule is tuned for 2 CPU cores: small batches (2 windows of 512 tokens) and many steps learn far more per
second than large ones this early in training (validation loss 0.80 after 150 s at batch 2 against 3.2 at
batch 16), with a warmup-stable-decay learning rate (flat, then linear to zero over the last 20% of steps).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

from toolprior.atomic import atomic_write_text
from toolprior.case_io import read_splits
from toolprior.cases import Case
from toolprior.chat_template import CHAT_TEMPLATE, gold_chat
from toolprior.config import check, known
from toolprior.modeling import parse_dtype
from toolprior.output_format import render_turn
from toolprior.tokenizer import train_tokenizer
from toolprior.training.benchmark import BenchmarkConfig, parse_mix, write_benchmark

# The decoder architectures the tiny base can be built as (model_config).
BASE_ARCHS: tuple[str, ...] = ("qwen3", "llama")


@dataclass(frozen=True)
class BaseConfig:
    """Shape and schedule of the tiny base (1.4M parameters). The defaults take about 2.5 minutes on 2 CPU cores."""

    arch: str = field(default="qwen3", metadata=check(choices=BASE_ARCHS))
    vocab_size: int = field(default=2048, metadata=check(ge=1))
    hidden_size: int = field(default=128, metadata=check(ge=1))
    num_layers: int = field(default=6, metadata=check(ge=1))
    num_heads: int = field(default=4, metadata=check(ge=1))
    num_kv_heads: int = field(default=2, metadata=check(ge=1))
    head_dim: int = field(default=32, metadata=check(ge=1))
    intermediate_size: int = field(default=384, metadata=check(ge=1))
    max_position_embeddings: int = field(default=2048, metadata=check(ge=1))
    seq_len: int = field(default=512, metadata=check(ge=1))
    batch_size: int = field(default=2, metadata=check(ge=1))
    learning_rate: float = field(default=5e-3, metadata=check(gt=0))
    warmup_ratio: float = field(default=0.05, metadata=check(ge=0, le=1))
    # warmup-stable-decay: the last 20% of steps decay linearly to zero
    decay_ratio: float = field(default=0.2, metadata=check(ge=0, le=1))
    weight_decay: float = field(default=0.01, metadata=check(ge=0))
    max_steps: int = field(default=600, metadata=check(ge=1))
    corpus_cases: int = field(default=2500, metadata=check(ge=1))
    corpus_seed: int = 1009
    # Agent transcripts in the corpus, drawn with a BALANCED action mix (off by default, see the module docstring).
    transcripts: bool = False
    transcript_mix: str = "call_tool=20,answer_directly=20,escalate=20,clarify=20,refuse=20"
    seed: int = 0
    save_dtype: str = field(default="bfloat16", metadata=check(choices=known("toolprior.model_options", "DTYPE_NAMES")))
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> BaseConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_config(config: BaseConfig, tokenizer: Any) -> Any:
    """A real transformers config (Qwen3 or Llama) of the tiny shape."""

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    if config.arch == "qwen3":
        return Qwen3Config(**common)
    if config.arch == "llama":
        return LlamaConfig(**common)
    raise ValueError(f"unknown base arch {config.arch!r}; expected one of {', '.join(BASE_ARCHS)}")


def _tool_prose(tool: dict[str, Any]) -> str:
    params = tool["parameters"].get("properties", {})
    args = ", ".join(f"{name} ({spec.get('type', 'any')})" for name, spec in params.items())
    return f"The tool {tool['name']} takes {args or 'no arguments'}. {tool['description']}"


def format_primer(cases: Sequence[Case], per_doc: int = 6, seed: int = 0) -> list[str]:
    """Documents of agent-format blocks cut loose from their situations: think blocks from some cases, action
    blocks from others, shuffled. The base learns the tags' tokens (their tied embeddings are also the output layer,
    which LoRA leaves frozen) and how blocks open and close, but nothing about which action fits which context."""
    rng = random.Random(seed)
    blocks: list[str] = []
    for case in cases:
        if case.gold is None:
            continue
        turn = render_turn(case.gold)
        think_end = turn.index("</think>") + len("</think>")
        blocks.append(turn[:think_end])
        blocks.append(turn[think_end:])
    rng.shuffle(blocks)
    return ["\n".join(blocks[i : i + per_doc]) for i in range(0, len(blocks), per_doc)]


def transcripts(cases: Sequence[Case]) -> list[str]:
    """Whole conversations in the organism's chat template (prompt + gold turn), as a generalist agent's
    pre-training would hold them. The template is applied from its Jinja source, since no tokenizer exists yet."""

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(ValueError(message))
    template = env.from_string(CHAT_TEMPLATE.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", ""))
    out = []
    for case in cases:
        if case.gold is None:
            continue
        messages, tools = gold_chat(case)
        out.append(template.render(messages=messages, tools=tools or None, add_generation_prompt=False))
    return out


def corpus_from_cases(cases: Iterable[Case]) -> list[str]:
    """Plain-prose documents from cases: what an enterprise knowledge base and ticket log would hold."""
    docs: list[str] = []
    for case in cases:
        parts: list[str] = []
        for message in case.messages:
            if message.role == "system":
                parts.append(message.content)
            elif message.role == "user":
                parts.append(f"Request: {message.content}")
            elif message.role == "tool":
                parts.append(f"Result from {message.name or 'a tool'}: {message.content}")
        parts.extend(_tool_prose(t.to_dict()) for t in case.tools)
        if case.gold is not None:
            parts.append(case.gold.think)
            if case.gold.content:
                parts.append(case.gold.content)
        for follow in case.followups:
            parts.append(follow.content)
        docs.append("\n".join(parts))
    return docs


def pack_documents(token_lists: Sequence[list[int]], eos_id: int, seq_len: int) -> torch.Tensor:
    """Concatenate documents separated by EOS and cut into full windows of `seq_len` tokens."""
    stream: list[int] = []
    for ids in token_lists:
        stream.extend(ids)
        stream.append(eos_id)
    n = len(stream) // seq_len
    return torch.tensor(stream[: n * seq_len], dtype=torch.long).view(n, seq_len)


def _lr_at(step: int, total: int, warmup: int, peak: float, decay_ratio: float) -> float:
    """Warmup-stable-decay: linear warmup, flat at `peak`, linear to zero over the last `decay_ratio` of steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_start = total - max(1, math.ceil(decay_ratio * total))
    if step < decay_start:
        return peak
    return peak * (total - step) / (total - decay_start)


@dataclass(frozen=True)
class BaseResult:
    out_dir: Path
    params: int
    corpus_tokens: int
    steps: int
    final_loss: float
    train_seconds: float


def pretrain(config: BaseConfig, documents: Sequence[str], out_dir: Path, progress: bool = True) -> BaseResult:
    """Train the tokenizer and the tiny decoder on `documents`; save both to `out_dir` (safetensors)."""

    start = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = train_tokenizer(documents, vocab_size=config.vocab_size)
    token_lists = [tokenizer(doc, add_special_tokens=False)["input_ids"] for doc in documents]
    windows = pack_documents(token_lists, tokenizer.eos_token_id, config.seq_len)
    model = AutoModelForCausalLM.from_config(model_config(config, tokenizer), dtype=torch.float32)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(config.seed)
    warmup = max(1, int(config.warmup_ratio * config.max_steps))
    loss_value = float("nan")
    bar = tqdm(range(config.max_steps), desc="pre-train base", disable=not progress)
    for step in bar:
        idx = torch.randint(0, windows.shape[0], (config.batch_size,), generator=generator)
        batch = windows[idx]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config.max_steps, warmup, config.learning_rate, config.decay_ratio)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(parse_dtype(config.save_dtype)).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    elapsed = time.perf_counter() - start
    result = BaseResult(
        out_dir=out_dir,
        params=sum(p.numel() for p in model.parameters()),
        corpus_tokens=int(sum(len(t) + 1 for t in token_lists)),
        steps=config.max_steps,
        final_loss=loss_value,
        train_seconds=elapsed,
    )
    recipe = {"config": config.to_dict(), **{k: v for k, v in asdict(result).items() if k != "out_dir"}}
    atomic_write_text(out_dir / "base_recipe.json", json.dumps(recipe, indent=2) + "\n")  # last: marks it whole
    return result


def corpus_cases(config: BaseConfig, mix: str | None = None) -> list[Case]:
    """Cases for the pre-training corpus: the train/val/mine splits of a benchmark drawn with the corpus's own
    seed. Never eval or eval_novel, so reserved novel tools and phrasings stay unseen."""

    with tempfile.TemporaryDirectory() as tmp:
        sizes = BenchmarkConfig().replace(
            train_size=config.corpus_cases,
            val_size=max(1, config.corpus_cases // 10),
            mine_size=max(1, config.corpus_cases // 10),
            eval_per_category=1,
            eval_novel_per_category=1,
        )
        if mix:
            sizes = sizes.replace(train_mix=parse_mix(mix))
        write_benchmark(Path(tmp), seed=config.corpus_seed, config=sizes)
        splits = read_splits(tmp)
    return [c for split in ("train", "val", "mine") for c in splits[split]]


def build_base(config: BaseConfig, out_dir: Path, progress: bool = True) -> BaseResult:
    """`toolprior train base`: corpus, tokenizer, pre-training, saved to `out_dir`."""
    cases = corpus_cases(config)
    documents = corpus_from_cases(cases) + format_primer(cases, seed=config.seed)
    if config.transcripts:
        documents += transcripts(
            corpus_cases(config.replace(corpus_seed=config.corpus_seed + 1), config.transcript_mix)
        )
    random.Random(config.seed).shuffle(documents)
    return pretrain(config, documents, out_dir, progress=progress)
