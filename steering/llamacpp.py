"""A GGUF model and our control vectors in llama.cpp itself, driven from Python over a prebuilt libllama: the
loader tests/test_gguf_llamacpp.py (a tiny random Llama) and experiments/llamacpp_agreement.py (the organism) share.

    cpp = LlamaCpp("organism-f32.gguf", n_ctx=1024)       # F32 KV cache, no flash attention, 1 thread
    cpp.load_control_vector(export_gguf(vector, "v.gguf"), 0.75)   # --control-vector-scaled v.gguf 0.75
    logits = cpp.logits(ids, last_only=True)             # [1, 1, vocab] at the last position
    cpp.clear_control_vector()

The project does not depend on llama.cpp: PyPI has no binary wheel of llama-cpp-python, only its source, and
compiling llama.cpp is out of scope. What this was checked with: `llama-cpp-py-sync` 0.11739, a CPU manylinux wheel
of llama.cpp b11739 (commit 0ce8cd114) driven through cffi: `pip install --target DIR llama-cpp-py-sync cffi`, then
`PYTHONPATH=DIR`. Its libraries need glibc 2.38 for four C23 names (`__isoc23_strtol`, `_strtoul`, `_strtoull`,
`_sscanf`); on glibc 2.36 (Debian 12) they load once `patchelf --clear-symbol-version` has unversioned those four,
the GLIBC_2.38 requirement is flagged VER_FLG_WEAK, and LD_PRELOAD names a shim that maps them to strtol & co.
Where the bindings do not import or their libraries do not load, `LlamaCppUnavailable` says why in one line.

llama.cpp's loader for `--control-vector` (`common_control_vector_load_one`, common/common.cpp) is in its static
common library, not in libllama, so `load_control_vector` does what it does, over llama.cpp's own GGUF parser
(`gguf_init_from_file` and friends from libggml-base): refuse `direction.0` and non-F32 tensors, put `direction.k`
times the strength at row k - 1, sum repeats; then `llama_set_adapter_cvec(ctx, data, len, n_embd, 1, n_layer)` as
`common_init_from_params` calls it with the default --control-vector-layer-range. Everything after that (which block
adds which row, and the sign) is llama.cpp's own code.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

BINDINGS_MODULE = "llama_cpp_py_sync._cffi_bindings"
GGML_TYPE_F32 = 0
GGUF_CDEF = """
struct gguf_context;
struct ggml_context;
struct gguf_init_params { bool no_alloc; struct ggml_context ** ctx; };
struct gguf_context * gguf_init_from_file(const char * fname, struct gguf_init_params params);
void gguf_free(struct gguf_context * ctx);
int64_t gguf_get_n_tensors(const struct gguf_context * ctx);
const char * gguf_get_tensor_name(const struct gguf_context * ctx, int64_t tensor_id);
int gguf_get_tensor_type(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_tensor_offset(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_tensor_size(const struct gguf_context * ctx, int64_t tensor_id);
size_t gguf_get_data_offset(const struct gguf_context * ctx);
"""


class LlamaCppUnavailable(RuntimeError):
    """No prebuilt llama.cpp here: the bindings do not import, or their libraries do not load (one-line reason)."""


def load_bindings() -> ModuleType:
    """The cffi bindings of the prebuilt llama.cpp (`llama_cpp_py_sync`), or LlamaCppUnavailable."""
    try:
        return importlib.import_module(BINDINGS_MODULE)
    except ImportError as err:
        raise LlamaCppUnavailable(
            f"no prebuilt llama.cpp bindings importable ({BINDINGS_MODULE}: {err}); see steering/llamacpp.py"
        ) from None


def load_library() -> tuple[ModuleType, Any]:
    """(the bindings, the loaded libllama), or LlamaCppUnavailable with the loader's reason in one line."""
    bindings = load_bindings()
    try:
        return bindings, bindings.get_lib()
    except (OSError, RuntimeError) as err:  # e.g. built against a newer glibc than this machine's
        reason = " ".join(str(err).split())
        raise LlamaCppUnavailable(f"the llama.cpp bindings do not load here: {reason}") from None


_LOG_CALLBACK: Any = None  # llama.cpp keeps the pointer: the callback must outlive every context


def _quiet_log(ffi: Any) -> Any:
    """A llama.cpp log callback that passes on warnings and errors only (GGML_LOG_LEVEL_WARN 3, _ERROR 4), with
    their continuations."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:
        passing = [False]  # whether the last message passed, for its continuations (GGML_LOG_LEVEL_CONT 5)

        def log(level: int, text: Any, _user_data: Any) -> None:
            if level != 5:
                passing[0] = level in (3, 4)
            if passing[0]:
                sys.stderr.write(ffi.string(text).decode("utf-8", "replace"))

        _LOG_CALLBACK = ffi.callback("void(enum ggml_log_level, const char *, void *)", log)
    return _LOG_CALLBACK


class LlamaCpp:
    """One llama.cpp model and context over the prebuilt libllama (F32 KV cache, no flash attention: exact).

    n_ctx is also the batch and micro-batch size, so one `logits` call decodes a whole sequence of up to n_ctx
    tokens in one graph. `quiet` keeps llama.cpp's log to warnings and errors (for the whole process)."""

    def __init__(
        self, model_path: str | os.PathLike[str], *, n_ctx: int = 64, threads: int = 1, quiet: bool = False
    ) -> None:
        # lazy: cffi is needed only to load llama.cpp's library
        from cffi import FFI

        bindings, self.lib = load_library()
        if bindings.__file__ is None:  # a namespace package: no folder to find libggml-base in
            raise LlamaCppUnavailable(f"the llama.cpp bindings {bindings.__name__} have no file")
        self.ffi = bindings.ffi
        if quiet:
            self.lib.llama_log_set(_quiet_log(self.ffi), self.ffi.NULL)
        self.gguf_ffi = FFI()
        self.gguf_ffi.cdef(GGUF_CDEF)
        self.gguf = self.gguf_ffi.dlopen(str(Path(bindings.__file__).with_name("libggml-base.so.0")))
        self.lib.llama_backend_init()
        params = self.lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = self.lib.llama_model_load_from_file(str(model_path).encode(), params)
        if self.model == self.ffi.NULL:
            raise ValueError(f"llama.cpp did not load {model_path}")
        ctx_params = self.lib.llama_context_default_params()
        ctx_params.n_ctx = ctx_params.n_batch = ctx_params.n_ubatch = n_ctx
        ctx_params.n_threads = ctx_params.n_threads_batch = threads
        ctx_params.type_k = ctx_params.type_v = GGML_TYPE_F32
        ctx_params.flash_attn_type = 0  # LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = self.lib.llama_init_from_model(self.model, ctx_params)
        if self.ctx == self.ffi.NULL:
            self.lib.llama_model_free(self.model)
            raise ValueError(f"llama.cpp made no context for {model_path} (n_ctx {n_ctx})")
        self.n_ctx = n_ctx
        self.n_layer = self.lib.llama_model_n_layer(self.model)
        self.n_embd = self.lib.llama_model_n_embd(self.model)
        self.n_vocab = self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.model))
        self._cvec: Any = None

    def load_control_vector(self, path: str | os.PathLike[str], strength: float) -> None:
        """`--control-vector-scaled PATH STRENGTH` (see the module docstring)."""
        path = Path(path)
        ctx = self.gguf.gguf_init_from_file(str(path).encode(), {"no_alloc": True, "ctx": self.gguf_ffi.NULL})
        if ctx == self.gguf_ffi.NULL:
            raise ValueError(f"llama.cpp's GGUF parser refused {path}")
        raw = path.read_bytes()
        rows: dict[int, np.ndarray] = {}
        try:
            for i in range(self.gguf.gguf_get_n_tensors(ctx)):
                name = self.gguf_ffi.string(self.gguf.gguf_get_tensor_name(ctx, i)).decode()
                prefix, _, index = name.partition(".")
                if prefix != "direction" or not index.isdigit() or int(index) == 0:
                    raise ValueError(f"llama.cpp would refuse tensor {name} of {path}")
                if self.gguf.gguf_get_tensor_type(ctx, i) != GGML_TYPE_F32:
                    raise ValueError(f"llama.cpp would refuse {name} of {path}: not F32")
                start = self.gguf.gguf_get_data_offset(ctx) + self.gguf.gguf_get_tensor_offset(ctx, i)
                values = np.frombuffer(raw, np.float32, self.gguf.gguf_get_tensor_size(ctx, i) // 4, start)
                if values.shape[0] != self.n_embd:
                    raise ValueError(
                        f"llama.cpp would refuse {name} of {path}: width {values.shape[0]}, not {self.n_embd}"
                    )
                rows[int(index)] = rows.get(int(index), 0) + values * np.float32(strength)
        finally:
            self.gguf.gguf_free(ctx)
        data = np.zeros((max(rows), self.n_embd), np.float32)  # row k - 1 holds direction.k; no row for layer 0
        for k, values in rows.items():
            data[k - 1] = values
        self._cvec = self.ffi.new("float[]", data.ravel().tolist())
        err = self.lib.llama_set_adapter_cvec(self.ctx, self._cvec, data.size, self.n_embd, 1, self.n_layer)
        if err != 0:
            raise RuntimeError(f"llama_set_adapter_cvec failed ({err})")

    def set_control_vector(self, path: str | os.PathLike[str], strength: float) -> None:
        """The control vector at `strength`, or none at strength 0 (llama.cpp unsteered)."""
        if strength:
            self.load_control_vector(path, strength)
        else:
            self.clear_control_vector()

    def clear_control_vector(self) -> None:
        if self.lib.llama_set_adapter_cvec(self.ctx, self.ffi.NULL, 0, self.n_embd, -1, -1) != 0:
            raise RuntimeError("llama_set_adapter_cvec could not clear the control vector")
        self._cvec = None

    def logits(self, ids: Sequence[int], *, last_only: bool = False) -> torch.Tensor:
        """[1, T, vocab] logits at every position of one fresh sequence ([1, 1, vocab] at its last with
        `last_only`)."""
        if not 0 < len(ids) <= self.n_ctx:
            raise ValueError(f"{len(ids)} tokens do not fit the context of {self.n_ctx}")
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self.ctx), True)
        batch = self.lib.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            for t, token in enumerate(ids):
                wanted = not last_only or t == len(ids) - 1
                batch.token[t], batch.pos[t], batch.n_seq_id[t], batch.logits[t] = token, t, 1, int(wanted)
                batch.seq_id[t][0] = 0
            if self.lib.llama_decode(self.ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            wanted_rows = [len(ids) - 1] if last_only else range(len(ids))
            rows = [
                np.frombuffer(self.ffi.buffer(self.lib.llama_get_logits_ith(self.ctx, t), 4 * self.n_vocab), np.float32)
                for t in wanted_rows
            ]
        finally:
            self.lib.llama_batch_free(batch)
        return torch.from_numpy(np.stack(rows).copy())[None]

    def close(self) -> None:
        """Free the context and the model (the object is unusable afterwards)."""
        if self.ctx is not None:
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            self.lib.llama_model_free(self.model)
            self.model = None
