"""The steering vector: one direction per decoder block, saved as safetensors plus a JSON sidecar.

    vector = SteeringVector({3: v3, 4: v4}, meta={"method": "mean_diff"})
    mixed = 0.5 * vector + other - vector.at_layer(3)      # layer-wise arithmetic (union of layers)
    vector.save("runs/x/clarify.safetensors")               # + runs/x/clarify.json
    vector = SteeringVector.load("runs/x/clarify.safetensors", model=model, tokenizer=tokenizer)
    with vector.apply(model, alpha=4.0):
        ...generate...

The sidecar (`<stem>.json` beside the tensors) records what a vector is only valid for: the model fingerprint
(base weights + adapter, `toolprior.fingerprint.model_fingerprint`), the layers and their norms, the hook place, the
position rule the activations were read at, the chat template's hash, the method and the source split. `load`
with a model refuses (InputError, one line) a model whose hidden size, layer count or fingerprint differs, and with
a tokenizer one whose chat template differs: a vector read off another model points nowhere in particular.

A shareable folder, laid out like a PEFT adapter folder (`adapter_model.safetensors` + `adapter_config.json` +
`README.md` there; here):

    vector.save_pretrained("clarify-vector/")   # steering_vector.safetensors + steering_config.json + README.md
    vector = SteeringVector.from_pretrained("clarify-vector/", model=model, tokenizer=tokenizer)

The config is the sidecar (same fields, plus PEFT's `base_model_name_or_path`); the README is a model card naming
the base model, the fingerprint, the layers and norms, the method, the data split and the study the vector came
from, as far as its metadata records them. Loading reads the folder's own files only (a model path in the metadata
is information, never opened), so a copied or moved folder loads; `from_pretrained` with a model runs the same
`check_model` as `load`.
For llama.cpp and repeng, `steering.gguf_io` writes and reads GGUF control vectors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from toolprior.atomic import atomic_open, atomic_write_text
from toolprior.chat_template import template_hash
from toolprior.decoder_config import text_config
from toolprior.errors import InputError, Problem
from toolprior.fingerprint import model_fingerprint
from toolprior.model_protocols import CausalLM, Tokenizer
from toolprior.modeling import decoder_layers
from toolprior.steering.apply import Steering, steer

if TYPE_CHECKING:
    from toolprior.steering.apply import Steering

FORMAT = "toolprior.steering_vector"
FORMAT_VERSION = 1
HOOKS: tuple[str, ...] = ("resid_post",)
_KEY_PREFIX = "layer."
# The names of a `save_pretrained` folder, after PEFT's adapter_model.safetensors / adapter_config.json.
WEIGHTS_NAME = "steering_vector.safetensors"
CONFIG_NAME = "steering_config.json"
CARD_NAME = "README.md"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """`V.safetensors` -> `V.json`: where a vector's metadata lives."""
    return Path(path).with_suffix(".json")


@dataclass
class SteeringVector:
    """A direction per decoder block (`layer_vectors[i]` is [d_model]) added at `hook` ("resid_post": the output
    of block i). `meta` holds provenance (see the module docstring); arithmetic keeps the left operand's."""

    layer_vectors: dict[int, torch.Tensor]
    hook: str = "resid_post"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.layer_vectors:
            raise ValueError("a steering vector needs at least one layer")
        if self.hook not in HOOKS:
            raise ValueError(f"unknown steering hook {self.hook!r}; expected one of {', '.join(HOOKS)}")
        vectors: dict[int, torch.Tensor] = {}
        width = None
        for layer, vec in sorted(self.layer_vectors.items()):
            if int(layer) < 0:
                raise ValueError(f"layer must be >= 0, got {layer}")
            vec = torch.as_tensor(vec).detach()
            if vec.dim() != 1:
                raise ValueError(f"layer {layer}: expected a 1-D vector, got shape {tuple(vec.shape)}")
            if width is not None and vec.shape[0] != width:
                raise ValueError(f"layer {layer}: width {vec.shape[0]} differs from the other layers' {width}")
            width = vec.shape[0]
            vectors[int(layer)] = vec
        self.layer_vectors = vectors

    # ------------------------------------------------------------------------------------------------ properties

    @property
    def layers(self) -> list[int]:
        return sorted(self.layer_vectors)

    @property
    def d_model(self) -> int:
        return int(next(iter(self.layer_vectors.values())).shape[0])

    def norms(self) -> dict[int, float]:
        """The L2 norm of each layer's vector."""
        return {layer: float(v.float().norm()) for layer, v in sorted(self.layer_vectors.items())}

    def __getitem__(self, layer: int) -> torch.Tensor:
        try:
            return self.layer_vectors[layer]
        except KeyError:
            raise KeyError(f"the vector has no layer {layer}; it has {self.layers}") from None

    # ------------------------------------------------------------------------------------------------ selection

    def only(self, layers: Iterable[int]) -> SteeringVector:
        """The vector at `layers` only (each must be one of its layers)."""
        wanted = sorted({int(x) for x in layers})
        missing = [x for x in wanted if x not in self.layer_vectors]
        if missing:
            raise ValueError(f"the vector has no layer(s) {missing}; it has {self.layers}")
        return self._derived({x: self.layer_vectors[x] for x in wanted}, f"only{wanted}")

    def at_layer(self, target: int, source: int | None = None) -> SteeringVector:
        """The direction of layer `source` (default: the only layer) placed at layer `target`: the random-layer
        control of a sweep (the same vector where it was not computed)."""
        if source is None:
            if len(self.layer_vectors) != 1:
                raise ValueError(f"the vector has layers {self.layers}; say which one to move (source=)")
            source = self.layers[0]
        return self._derived({int(target): self[source]}, f"moved {source}->{target}")

    def unit(self) -> SteeringVector:
        """Each layer's vector scaled to norm 1."""
        return self._derived(
            {k: v / v.float().norm().clamp_min(1e-12).to(v.dtype) for k, v in self.layer_vectors.items()}, "unit"
        )

    # ------------------------------------------------------------------------------------------------ arithmetic

    def _derived(self, vectors: Mapping[int, torch.Tensor], op: str) -> SteeringVector:
        meta = dict(self.meta)
        meta["derived"] = [*meta.get("derived", []), op]
        return SteeringVector(dict(vectors), hook=self.hook, meta=meta)

    def _check_compatible(self, other: SteeringVector) -> None:
        if other.hook != self.hook:
            raise ValueError(f"cannot combine vectors at different hooks ({self.hook} and {other.hook})")
        if other.d_model != self.d_model:
            raise ValueError(f"cannot combine vectors of width {self.d_model} and {other.d_model}")
        mine = (self.meta.get("fingerprint") or {}).get("id")
        theirs = (other.meta.get("fingerprint") or {}).get("id")
        if mine and theirs and mine != theirs:
            raise ValueError(f"cannot combine vectors of different models (fingerprints {mine} and {theirs})")

    def __add__(self, other: SteeringVector) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        self._check_compatible(other)
        out = {k: v.clone() for k, v in self.layer_vectors.items()}
        for k, v in other.layer_vectors.items():
            out[k] = out[k] + v.to(out[k].dtype) if k in out else v.clone()
        return self._derived(out, "add")

    def __neg__(self) -> SteeringVector:
        return self._derived({k: -v for k, v in self.layer_vectors.items()}, "neg")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        return self + (-other)

    def __mul__(self, scale: float) -> SteeringVector:
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return self._derived({k: v * float(scale) for k, v in self.layer_vectors.items()}, f"mul {scale:g}")

    __rmul__ = __mul__

    def __truediv__(self, scale: float) -> SteeringVector:
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return self * (1.0 / float(scale))

    # ------------------------------------------------------------------------------------------------ apply

    def apply(self, model: CausalLM, alpha: float | torch.Tensor = 1.0, **kwargs: Any) -> Steering:
        """`steering.apply.steer(model, self, alpha, **kwargs)`: a context manager whose hooks come out on exit."""
        return steer(model, self, alpha, **kwargs)

    # ------------------------------------------------------------------------------------------------ save / load

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "hook": self.hook,
            "layers": self.layers,
            "d_model": self.d_model,
            "norms": {str(k): round(n, 6) for k, n in self.norms().items()},
            "meta": self.meta,
        }

    def _write(self, target: Path, side: Path, header: Mapping[str, Any]) -> None:

        tensors = {f"{_KEY_PREFIX}{k}": v.detach().to("cpu").contiguous() for k, v in self.layer_vectors.items()}
        with atomic_open(target, "wb") as f:
            f.write(save_bytes(tensors, metadata={"format": FORMAT}))
        atomic_write_text(side, json.dumps(header, indent=1, default=str) + "\n")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `path` (safetensors: one tensor `layer.{i}` per layer) and its JSON sidecar; returns `path`."""
        target = Path(path)
        self._write(target, sidecar_path(target), self._header())
        return target

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write a shareable folder: `steering_vector.safetensors`, `steering_config.json` (the sidecar plus
        `base_model_name_or_path`) and a `README.md` model card; returns the folder."""

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        fingerprint = self.meta.get("fingerprint") or {}
        header = {"base_model_name_or_path": fingerprint.get("name_or_path") or None, **self._header()}
        self._write(folder / WEIGHTS_NAME, folder / CONFIG_NAME, header)
        atomic_write_text(folder / CARD_NAME, model_card(self, folder.name))
        return folder

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], model: CausalLM | None = None, tokenizer: Tokenizer | None = None
    ) -> SteeringVector:
        """Read a saved vector. With `model`, refuse (InputError) one whose hidden size, layer count or
        fingerprint is not the vector's; with `tokenizer`, one whose chat template hash is not the vector's."""
        target = Path(path)
        if not target.is_file():
            raise InputError(Problem(str(target), None, None, "no such steering vector file"))
        side = sidecar_path(target)
        if not side.is_file():
            raise InputError(Problem(str(side), None, None, "missing sidecar of the steering vector"))
        return cls._read(target, side, model, tokenizer)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], model: CausalLM | None = None, tokenizer: Tokenizer | None = None
    ) -> SteeringVector:
        """Read a `save_pretrained` folder, with the same model and tokenizer checks as `load`."""
        folder = Path(directory)
        if not folder.is_dir():
            raise InputError(Problem(str(folder), None, None, "no such steering vector folder"))
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            if not (folder / name).is_file():
                raise InputError(Problem(str(folder / name), None, None, "missing from the steering vector folder"))
        return cls._read(folder / WEIGHTS_NAME, folder / CONFIG_NAME, model, tokenizer)

    @classmethod
    def _read(cls, target: Path, side: Path, model: Any, tokenizer: Any) -> SteeringVector:

        try:
            header = json.loads(side.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(Problem(str(side), err.lineno, None, f"invalid JSON: {err.msg}")) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InputError(Problem(str(side), None, "format", f"not a steering vector sidecar (expected {FORMAT})"))
        vectors: dict[int, torch.Tensor] = {}
        with safe_open(str(target), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key.startswith(_KEY_PREFIX):
                    vectors[int(key[len(_KEY_PREFIX) :])] = f.get_tensor(key)
        if sorted(vectors) != sorted(int(x) for x in header.get("layers", [])):
            raise InputError(
                Problem(
                    str(target),
                    None,
                    "layers",
                    f"tensors hold layers {sorted(vectors)}, sidecar says {header.get('layers')}",
                )
            )
        vector = cls(vectors, hook=str(header.get("hook", "resid_post")), meta=dict(header.get("meta") or {}))
        if model is not None:
            check_model(vector, model, where=str(target))
        if tokenizer is not None:
            check_tokenizer(vector, tokenizer, where=str(target))
        return vector


def check_model(vector: SteeringVector, model: Any, where: str = "<vector>") -> None:
    """InputError (one line) when `model` is not the model the vector was computed on: hidden size and layer count
    are compared first (so the message says which differs), then the fingerprint id."""

    config = text_config(model)
    hidden, n_layers = int(config.hidden_size), len(decoder_layers(model))
    if vector.d_model != hidden:
        raise InputError(
            Problem(
                where,
                None,
                "hidden_size",
                f"the vector has width {vector.d_model}, the model's hidden size is {hidden}",
            )
        )
    saved = vector.meta.get("fingerprint") or {}
    if saved.get("num_layers") is not None and int(saved["num_layers"]) != n_layers:
        raise InputError(
            Problem(
                where,
                None,
                "num_layers",
                f"the vector was computed on a model with {saved['num_layers']} layers, this model has {n_layers}",
            )
        )
    out_of_range = [x for x in vector.layers if x >= n_layers]
    if out_of_range:
        raise InputError(
            Problem(where, None, "layers", f"layers {out_of_range} out of range for a model with {n_layers} layers")
        )
    if saved.get("id") is not None:
        current = model_fingerprint(model)
        if current.id != saved["id"]:
            raise InputError(
                Problem(
                    where,
                    None,
                    "fingerprint",
                    f"computed on model {saved['id']} ({saved.get('name_or_path') or saved.get('architecture')}), "
                    f"not on this one ({current.id}, {current.name_or_path or current.architecture}); load the same "
                    "base, adapter and quantisation",
                )
            )


def check_tokenizer(vector: SteeringVector, tokenizer: Any, where: str = "<vector>") -> None:
    """InputError when the tokenizer's chat template is not the one the vector's activations were read with."""
    saved = vector.meta.get("chat_template_hash")
    current = chat_template_hash(tokenizer)
    if saved and current and saved != current:
        raise InputError(
            Problem(
                where, None, "chat_template_hash", f"computed with chat template {saved}, the tokenizer's is {current}"
            )
        )


def chat_template_hash(tokenizer: Any) -> str | None:
    """`toolprior.chat_template.template_hash` of the tokenizer's chat template (None when it has none)."""

    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: hash them all, in a stable order
        template = json.dumps(template, sort_keys=True)
    return template_hash(template) if isinstance(template, str) and template else None


def vector_meta(
    model: Any,
    tokenizer: Any = None,
    *,
    method: str,
    source: str,
    position: str,
    split: str | None = None,
    positive: str,
    negative: str,
    n: Mapping[str, int] | None = None,
    probe_metrics: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance a computed vector carries (see the module docstring)."""

    meta: dict[str, Any] = {
        "fingerprint": model_fingerprint(model).to_dict(),
        "chat_template_hash": chat_template_hash(tokenizer) if tokenizer is not None else None,
        "method": method,
        "source": source,
        "position": position,
        "place": "blocks.{layer}.hook_resid_post",
        "split": split,
        "direction": f"{positive} - {negative}",
    }
    if n is not None:
        meta["n"] = dict(n)
    if probe_metrics is not None:
        meta["probe_metrics"] = dict(probe_metrics)
    meta.update(extra)
    return meta


def _cell(value: Any) -> str:
    """A value as one Markdown table cell (a `|` or a line break would end the row)."""
    if value is None or value == "" or value == {}:
        return "not recorded"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def model_card(vector: SteeringVector, name: str = "steering-vector") -> str:
    """The README.md of a `save_pretrained` folder: what the vector is valid for, where it came from, how to use it.
    Everything comes from the vector's metadata; a field it does not record reads "not recorded"."""
    meta = vector.meta
    fingerprint = meta.get("fingerprint") or {}
    base = fingerprint.get("name_or_path") or fingerprint.get("architecture")
    direction = meta.get("direction") or "positive - negative"
    front = ["---", "library_name: toolprior", "tags:", "- steering-vector", "- toolprior"]
    hub_name = fingerprint.get("name_or_path")
    if hub_name and not Path(hub_name).is_absolute():
        # Only a model name goes into `base_model` (hubs read it as a repository id); JSON strings are YAML strings.
        front.append(f"base_model: {json.dumps(str(hub_name))}")
    front.append("---")
    rows = [
        ("base model", base),
        ("architecture", fingerprint.get("architecture")),
        ("model fingerprint", fingerprint.get("id")),
        ("hidden size / layers", f"{vector.d_model} / {fingerprint.get('num_layers', 'not recorded')}"),
        ("steered layers", ", ".join(str(x) for x in vector.layers)),
        ("hook", f"{vector.hook}: added to the output of decoder block L (0-based)"),
        ("direction", direction),
        ("method", meta.get("method")),
        ("source", meta.get("source")),
        ("activation position", meta.get("position")),
        ("data split", meta.get("split")),
        ("cases", meta.get("n")),
        ("study", meta.get("study")),
        ("chat template hash", meta.get("chat_template_hash")),
        ("probe metrics", meta.get("probe_metrics")),
        ("derived by", " -> ".join(meta.get("derived", [])) or None),
    ]
    lines = [*front, "", f"# {name}", ""]
    lines.append(
        f"A toolprior steering vector ({_cell(direction)}) for {_cell(base)}. Steering adds alpha * v[L] to the "
        "residual stream after decoder block L at each steered layer L; a positive alpha pushes toward the first "
        "side of the direction."
    )
    lines += ["", "| field | value |", "| --- | --- |"]
    lines += [f"| {field} | {_cell(value)} |" for field, value in rows]
    lines += ["", "## Layers", "", "| layer | L2 norm |", "| --- | --- |"]
    lines += [f"| {layer} | {norm:.6g} |" for layer, norm in vector.norms().items()]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from steering.vector import SteeringVector",
        "",
        f'vector = SteeringVector.from_pretrained("{name}", model=model, tokenizer=tokenizer)  # refuses another model',
        "with vector.apply(model, alpha=4.0):",
        "    ...  # generate",
        "```",
        "",
        f"For llama.cpp: `toolprior steer export --format gguf {name} vector.gguf`, then "
        "`llama-cli -m MODEL.gguf --control-vector-scaled vector.gguf ALPHA` (llama.cpp adds it at every position and "
        "cannot steer block 0).",
        "",
        "Files: `steering_vector.safetensors` (one float tensor `layer.{L}` per layer), `steering_config.json` "
        "(layers, norms, hook and the full provenance, including the model fingerprint the loader checks).",
        "",
    ]
    return "\n".join(lines)
