"""GGUF control vectors: the file llama.cpp's `--control-vector` reads and repeng's `ControlVector.export_gguf`
writes, to and from `SteeringVector`.

    export_gguf(vector, "clarify.gguf")                     # llama-cli -m M.gguf --control-vector-scaled clarify.gguf 4
    export_gguf(vector, "clarify_x4.gguf", alpha=4.0)       # alpha baked in: --control-vector clarify_x4.gguf
    vector = import_gguf("from_repeng.gguf", model=model)   # width and layer range checked against the model

The file (repeng 0.4.0 `ControlVector.export_gguf`; llama.cpp's cvector-generator writes the same):
`general.architecture = "controlvector"`, `controlvector.model_hint` (a string, the model type, e.g. "llama"),
`controlvector.layer_count` (the number of direction tensors), and one 1-D F32 tensor `direction.{k}` of width
n_embd per steered layer. llama.cpp's loader reads only the tensors, never the metadata, and refuses the whole file
when a tensor is not F32, not 1-D, of another width, or named `direction.0`; tensors naming the same layer are summed.

Layer convention: our layer L is llama.cpp's `direction.L` and repeng's `directions[L]`, the same 0-based block index.

- toolprior: `steering.apply` hooks the output of `decoder_layers(model)[L]`, the residual stream after block L
  (`blocks.L.hook_resid_post`, Hugging Face `hidden_states[L + 1]`), and adds alpha * v[L] there.
- llama.cpp: `llama_adapter_cvec::apply_to(ctx, cur, il)` adds `tensors[il]` (src/llama-adapter.cpp), called as
  `cur = build_cvec(cur, il); cb(cur, "l_out", il);` after block il's FFN residual add (src/models/llama.cpp and
  every other architecture): the output of 0-based block il. `common_control_vector_load_one` (common/common.cpp)
  puts `direction.k` in that buffer at `n_embd * (k - 1)`, and `llama_adapter_cvec::apply` gives buffer row
  `il - 1` to `tensors[il]` for il = 1 .. n_layer - 1: `direction.k` is added to the output of block k. Block 0's
  output cannot be steered (tensors[0] is always null, and `direction.0` fails the load). The default
  `--control-vector-layer-range` is 1 .. n_layer, inclusive, over the same k.
- repeng: `read_representations` reads `hidden_states[k + 1]` for `directions[k]` and `ControlModule` adds it to
  the output of `model.model.layers[k]`; `export_gguf` names it `direction.k`. Its default layers,
  `range(-1, -num_hidden_layers, -1)`, are n_layer - 1 .. 1, never 0.
- Note: llama.cpp's own cvector-generator READS l_out of block k - 1 for `direction.k` (it names the layer-il
  result `direction.{il + 1}`), so its vectors are applied one block after where they were read. That is how it
  computes, not how a file is applied; files read here are applied where llama.cpp applies them.

Sign: all three ADD the stored vector times a scale: llama.cpp `ggml_add(cur, direction * strength)`
(`--control-vector-scaled FILE STRENGTH`, default 1), repeng `output + coeff * direction`, toolprior
`h + alpha * v`. The stored vector is not flipped, so alpha = strength = coeff with the same sign: a positive value
pushes toward the vector's first side ("clarify - call_tool": toward clarify).

Checked: tests/test_gguf_io.py computes a tiny Llama's steered logits by hand from its weights (direction.k added
after block k) and matches `steer()` on an imported repeng file; tests/test_gguf_llamacpp.py runs our export and
repeng's file in llama.cpp b11739 itself (prebuilt, where importable) and matches `steer()` to 1.5e-7 in the logits,
against 2e-2 .. 9e-1 for the vector one block early or late or sign-flipped. On the organism (SmolLM2 with its adapter
merged in float32, converted to an F32 GGUF by llama.cpp's own convert_hf_to_gguf.py), experiments/llamacpp_agreement.py
with the demo's vector at layer 22 gives llama.cpp's first-token decision = `steer(positions="all")`'s on 24 of 24
mine cases at each of alpha 0, 0.5, 0.75 and 1, max |logit gap| 2.2e-4 at the decision position, where the vector
moves the tag logits by up to 7.6 and the closest decision margin is 0.028. Sources read (ggml-org/llama.cpp):
src/llama-adapter.cpp@0650ea8c05bc6e31273182470197e9b2e50253e0 lines 14-29 (tensor_for, apply_to), 65 (no tensor
for layer 0), 124-127 (row il - 1 -> tensors[il]); src/models/llama.cpp@069be0ae22f391c64e26e8da4c7da0143ede8cf3
(`build_cvec(cur, il)` before `cb(cur, "l_out", il)`); common/common.cpp (`common_control_vector_load_one`,
`common_init_from_params`); tools/cvector-generator/mean.hpp (`direction.%zu`, il + 1); vgel/repeng@0ba7196
repeng/extract.py (export_gguf, read_representations) and repeng/control.py (ControlModule.forward).

What does not carry over: llama.cpp adds the vector at every position, prompt included (toolprior's
`positions="all"`, operator "add", no keep_norm); a vector chosen with `positions="from_decision"` acts more broadly
there. The model fingerprint and chat template hash are not checked by llama.cpp, so the file also carries the
toolprior sidecar (`toolprior.meta`, JSON) and the tensors' dtype: importing our own export restores the vector
bit for bit, metadata included. A file from elsewhere has no fingerprint, so `import_gguf(model=...)` can check
only its width and layer range.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolprior.errors import InputError, Problem
from toolprior.steering.vector import FORMAT, SteeringVector, check_model, check_tokenizer

ARCH = "controlvector"
MODEL_HINT_KEY = f"{ARCH}.model_hint"
LAYER_COUNT_KEY = f"{ARCH}.layer_count"
# Our own keys: llama.cpp and repeng ignore keys they do not know.
META_KEY = "toolprior.meta"
HOOK_KEY = "toolprior.hook"
DTYPE_KEY = "toolprior.dtype"
ALPHA_KEY = "toolprior.alpha"
FORMAT_KEY = "toolprior.format"
_TENSOR = re.compile(r"direction\.(\d+)")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def model_hint_for(vector: SteeringVector) -> str:
    """The `controlvector.model_hint` of a vector: the model type as repeng writes it (`config.model_type`,
    e.g. "qwen3"), from the recorded model class ("Qwen3ForCausalLM" -> "qwen3"); "unknown" when none is recorded."""
    fingerprint = vector.meta.get("fingerprint") or {}
    if vector.meta.get("model_hint"):
        return str(vector.meta["model_hint"])
    architecture = str(fingerprint.get("architecture") or "")
    for suffix in ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "Model"):
        if architecture.endswith(suffix) and len(architecture) > len(suffix):
            return architecture[: -len(suffix)].lower()
    return architecture.lower() or "unknown"


def export_gguf(
    vector: SteeringVector,
    path: str | os.PathLike[str],
    *,
    alpha: float = 1.0,
    model_hint: str | None = None,
) -> Path:
    """Write `vector` (times `alpha`) as a llama.cpp / repeng control vector file; returns the path.

    Layer L becomes `direction.L` (see the module docstring). Refuses (ValueError) a vector with layer 0, which
    llama.cpp cannot steer and whose presence makes it reject the whole file: export `vector.only(...)` without it.
    """
    # lazy: gguf is needed only for GGUF files
    import gguf

    if vector.hook != "resid_post":
        raise ValueError(f"only resid_post vectors map onto llama.cpp control vectors, not {vector.hook!r}")
    if 0 in vector.layers:
        raise ValueError(
            "layer 0 cannot be exported: llama.cpp never steers block 0's output and rejects a file holding "
            f"direction.0; export the other layers ({[x for x in vector.layers if x] or 'none'}) instead"
        )
    scaled = vector if float(alpha) == 1.0 else vector * float(alpha)
    dtype = str(vector[vector.layers[0]].dtype).removeprefix("torch.")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        # The calls and their order are repeng's export_gguf, so the file is the one repeng writes plus our keys.
        writer = gguf.GGUFWriter(tmp, ARCH)
        writer.add_string(MODEL_HINT_KEY, model_hint or model_hint_for(vector))
        writer.add_uint32(LAYER_COUNT_KEY, len(scaled.layers))
        writer.add_string(FORMAT_KEY, FORMAT)
        writer.add_string(HOOK_KEY, vector.hook)
        writer.add_string(DTYPE_KEY, dtype)
        writer.add_float32(ALPHA_KEY, float(alpha))
        writer.add_string(META_KEY, json.dumps(scaled.meta, sort_keys=True, default=str))
        for layer in scaled.layers:
            # llama.cpp accepts F32 only. Scaling happens in float32, so a bf16 vector loses nothing at alpha 1.
            values = scaled[layer].detach().to("cpu", torch.float32).contiguous().numpy()
            writer.add_tensor(f"direction.{layer}", values)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def import_gguf(path: str | os.PathLike[str], model: Any = None, tokenizer: Any = None) -> SteeringVector:
    """Read a GGUF control vector (ours, repeng's, llama.cpp's cvector-generator's) as a SteeringVector:
    `direction.k` becomes layer k. With `model` (and `tokenizer`), the same checks as `SteeringVector.load`.
    InputError (one line naming the file) when the file is not a control vector llama.cpp would load."""
    # lazy: gguf is needed only for GGUF files
    from gguf import GGMLQuantizationType, GGUFReader

    source = Path(path)
    where = str(source)
    if not source.is_file():
        raise InputError(Problem(where, None, None, "no such GGUF file"))
    try:
        reader = GGUFReader(source)
    except (ValueError, OSError, IndexError) as err:
        raise InputError(Problem(where, None, None, f"not a readable GGUF file ({err})")) from None
    arch = _field(reader, "general.architecture")
    if arch != ARCH:
        raise InputError(
            Problem(where, None, "general.architecture", f"is {arch!r}, not {ARCH!r}: not a control vector")
        )
    vectors: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        match = _TENSOR.fullmatch(tensor.name)
        if match is None:
            raise InputError(Problem(where, None, tensor.name, "not a direction.{layer} tensor"))
        if tensor.tensor_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            raise InputError(Problem(where, None, tensor.name, f"type {tensor.tensor_type.name}, expected F32"))
        if len(tensor.shape) != 1:
            raise InputError(Problem(where, None, tensor.name, f"shape {list(tensor.shape)}, expected one dimension"))
        # Copy out of the memory map; the reader's arrays are views of the file.
        values = torch.from_numpy(np.array(tensor.data, dtype=np.float32, copy=True))
        layer = int(match.group(1))
        # llama.cpp sums the tensors that name one layer ("direction.1" and "direction.01").
        vectors[layer] = vectors[layer] + values if layer in vectors else values
    if not vectors:
        raise InputError(Problem(where, None, None, "holds no direction tensors"))
    widths = {v.shape[0] for v in vectors.values()}
    if len(widths) != 1:
        raise InputError(Problem(where, None, None, f"direction tensors of different widths {sorted(widths)}"))
    raw_meta = _field(reader, META_KEY)
    if raw_meta is not None:
        meta = json.loads(raw_meta)
        dtype = _DTYPES.get(str(_field(reader, DTYPE_KEY)), torch.float32)
        vectors = {k: v.to(dtype) for k, v in vectors.items()}
        hook = str(_field(reader, HOOK_KEY) or "resid_post")
    else:
        meta = {
            "source_format": "gguf control vector",
            "model_hint": _field(reader, MODEL_HINT_KEY),
            "imported_from": source.name,
            "place": "blocks.{layer}.hook_resid_post",
        }
        hook = "resid_post"
    vector = SteeringVector(vectors, hook=hook, meta=meta)
    if model is not None:
        check_model(vector, model, where=where)
    if tokenizer is not None:
        check_tokenizer(vector, tokenizer, where=where)
    return vector


def read_vector(path: str | os.PathLike[str]) -> SteeringVector:
    """A vector from V.safetensors (+ sidecar), a `save_pretrained` folder or a GGUF control vector file."""
    path = Path(path)
    if path.is_dir():
        return SteeringVector.from_pretrained(path)
    if path.suffix.lower() == ".gguf":
        return import_gguf(path)
    return SteeringVector.load(path)
