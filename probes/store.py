"""Activations on disk: safetensors shards plus a JSON sidecar, streamed batch by batch. Nothing is pickled.

    path/
      activations.json            hooks and their row shapes, position rule, dtype, case ids, labels,
                                  model fingerprint, shards, created with (versions, backend, time)
      shard-00000.safetensors     one tensor per hook point ([rows, ...]) + "__rows__" (the case rows it holds)
      shard-00001.safetensors     ...

    store = ActivationStore("runs/x/acts", dtype=torch.float16)
    capture(model, tokenizer, texts, all_resid_post(model), "decision", store=store)
    acts = load_activations("runs/x/acts", hooks=["blocks.3.hook_resid_post"])

Writes are atomic: shards go into a hidden temporary folder beside `path`, which is renamed to `path` only when
the capture has finished (an aborted capture leaves nothing behind, and an existing store is replaced only with
`overwrite=True`). A shard is written whenever the buffered rows reach `shard_rows` or `shard_bytes`, so memory
holds at most one shard. Each shard records which case rows it holds, so rows may arrive in any order (capture
sorts texts by length) and load back in the caller's order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from toolprior.fingerprint import Fingerprint
from toolprior.probes.activations import Activations

FORMAT = "toolprior.activations"
FORMAT_VERSION = 1
SIDECAR = "activations.json"
ROWS_KEY = "__rows__"
STORE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def _dtype_name(dtype: torch.dtype) -> str:
    for name, value in STORE_DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"activations are stored as {', '.join(STORE_DTYPES)}, not {dtype}")


def _created_with() -> dict[str, str]:
    out: dict[str, str] = {}
    for package in ("toolprior", "torch", "transformers", "safetensors"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


class ActivationStore:
    """Streams captured batches to `path` as safetensors shards (see the module docstring).

    `dtype`: float16 / bfloat16 / float32 on disk (None: the capture's dtype). Used by `capture(..., store=)`,
    which calls `begin`, `append` per batch, then `finish` (or `abort` on error); usable by hand the same way."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        dtype: torch.dtype | None = None,
        *,
        shard_rows: int | None = None,
        shard_bytes: int = 256 * 2**20,
        overwrite: bool = False,
    ) -> None:
        if dtype is not None:
            _dtype_name(dtype)
        if shard_rows is not None and shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        self.path = Path(path)
        self.dtype = dtype
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes
        self.overwrite = overwrite
        self._tmp: Path | None = None
        self._header: dict[str, Any] = {}
        self._buffer: dict[str, list[torch.Tensor]] = {}
        self._buffer_rows: list[torch.Tensor] = []
        self._buffered = 0
        self._buffered_bytes = 0
        self._shards: list[dict[str, Any]] = []
        self._seen = 0
        self._finished = False

    # -- writing ---------------------------------------------------------------------------------------------------

    def begin(
        self,
        *,
        hooks: Sequence[str],
        position: str,
        case_ids: Sequence[str],
        labels: Sequence[str],
        fingerprint: Fingerprint,
        dtype: torch.dtype = torch.float32,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Open the temporary folder and record what every shard will hold."""
        if self._tmp is not None or self._finished:
            raise RuntimeError(f"{self.path}: this store was already begun; make a new ActivationStore")
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it")
        if len(case_ids) != len(labels):
            raise ValueError(f"{len(case_ids)} case ids but {len(labels)} labels")
        store_dtype = self.dtype or dtype
        self._header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "hooks": {name: None for name in hooks},
            "position": position,
            "dtype": _dtype_name(store_dtype),
            "n": len(case_ids),
            "case_ids": [str(c) for c in case_ids],
            "labels": [str(label) for label in labels],
            "fingerprint": fingerprint.to_dict(),
            "meta": dict(meta or {}),
            "created_with": _created_with(),
        }
        self.dtype = store_dtype
        self._buffer = {name: [] for name in hooks}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._tmp.mkdir()

    def append(self, tensors: Mapping[str, torch.Tensor], rows: torch.Tensor | Sequence[int]) -> None:
        """Add one batch: `tensors[hook]` is [B, ...] for every hook named at `begin`; `rows` are the B case rows."""
        if self._tmp is None:
            raise RuntimeError("append before begin")
        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        hooks = self._header["hooks"]
        if set(tensors) != set(hooks):
            raise ValueError(f"batch has hooks {sorted(tensors)}, the store expects {sorted(hooks)}")
        for name, value in tensors.items():
            if value.shape[0] != rows.shape[0]:
                raise ValueError(f"{name}: {value.shape[0]} rows for {rows.shape[0]} row indices")
            shape = list(value.shape[1:])
            if hooks[name] is None:
                hooks[name] = shape
            elif hooks[name] != shape:
                raise ValueError(f"{name}: rows of shape {shape}, earlier batches had {hooks[name]}")
            stored = value.detach().to(device="cpu", dtype=self.dtype)
            self._buffer[name].append(stored)
            self._buffered_bytes += stored.numel() * stored.element_size()
        self._buffer_rows.append(rows)
        self._buffered += int(rows.shape[0])
        self._seen += int(rows.shape[0])
        full_rows = self.shard_rows is not None and self._buffered >= self.shard_rows
        if full_rows or self._buffered_bytes >= self.shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        assert self._tmp is not None
        tensors = {name: torch.cat(parts).contiguous() for name, parts in self._buffer.items()}
        tensors[ROWS_KEY] = torch.cat(self._buffer_rows)
        file = f"shard-{len(self._shards):05d}.safetensors"
        save_file(tensors, str(self._tmp / file), metadata={"format": FORMAT, "rows": str(self._buffered)})
        self._shards.append({"file": file, "rows": self._buffered})
        self._buffer = {name: [] for name in self._buffer}
        self._buffer_rows = []
        self._buffered = 0
        self._buffered_bytes = 0

    def finish(self) -> Path:
        """Write the last shard and the sidecar, then move the folder into place; returns `path`."""
        if self._tmp is None:
            raise RuntimeError("finish before begin")
        self._flush()
        n = self._header["n"]
        seen = torch.cat([self._shard_rows(s["file"]) for s in self._shards]) if self._shards else torch.empty(0)
        if seen.numel() != n or (n and not torch.equal(torch.sort(seen).values, torch.arange(n))):
            self.abort()
            raise ValueError(f"{self.path}: rows written do not cover cases 0..{n - 1} exactly once")
        self._header["shards"] = self._shards
        self._header["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (self._tmp / SIDECAR).write_text(json.dumps(self._header, indent=1) + "\n", encoding="utf-8")
        old: Path | None = None
        if self.path.exists():
            if not self.overwrite:
                self.abort()
                raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it")
            old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._tmp = None
        self._finished = True
        return self.path

    def _shard_rows(self, file: str) -> torch.Tensor:
        assert self._tmp is not None
        with safe_open(str(self._tmp / file), framework="pt") as f:
            return f.get_tensor(ROWS_KEY)

    def abort(self) -> None:
        """Drop everything written so far (the temporary folder); `path` is left as it was."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._buffer = {}
        self._buffer_rows = []
        self._buffered = self._buffered_bytes = 0

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or not self._finished:
            self.abort()


# ------------------------------------------------------------------------------------------------------ reading


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a store folder, checked to be one."""
    file = Path(path) / SIDECAR
    if not file.is_file():
        raise FileNotFoundError(f"{path}: not an activation store (no {SIDECAR})")
    header = json.loads(file.read_text(encoding="utf-8"))
    if header.get("format") != FORMAT:
        raise ValueError(f"{file}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{file}: version {header.get('version')!r}, this reader knows {FORMAT_VERSION}")
    return header


def _load_hook(path: Path, header: dict[str, Any], hook: str) -> torch.Tensor:
    shape = header["hooks"][hook] or []
    out = torch.empty((header["n"], *shape), dtype=STORE_DTYPES[header["dtype"]])
    for shard in header["shards"]:
        with safe_open(str(path / shard["file"]), framework="pt") as f:
            out[f.get_tensor(ROWS_KEY)] = f.get_tensor(hook)
    return out


class _LazyTensors(Mapping[str, torch.Tensor]):
    """Hook name -> tensor, each read from the shards on first access (then kept)."""

    def __init__(self, path: Path, header: dict[str, Any], hooks: Sequence[str]) -> None:
        self._path, self._header, self._hooks = path, header, list(hooks)
        self._cache: dict[str, torch.Tensor] = {}

    def __getitem__(self, hook: str) -> torch.Tensor:
        if hook not in self._hooks:
            raise KeyError(hook)
        if hook not in self._cache:
            self._cache[hook] = _load_hook(self._path, self._header, hook)
        return self._cache[hook]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hooks)

    def __len__(self) -> int:
        return len(self._hooks)


def load_activations(
    path: str | os.PathLike[str], hooks: Sequence[str] | None = None, *, lazy: bool = False
) -> Activations:
    """Read a store back: every hook point, or only `hooks`. `lazy=True` reads each hook's tensor on first access.

    Rows come back in the order of the capture's texts, with their case ids and labels."""
    folder = Path(path)
    header = read_sidecar(folder)
    stored = list(header["hooks"])
    wanted = stored if hooks is None else list(hooks)
    unknown = [h for h in wanted if h not in header["hooks"]]
    if unknown:
        raise KeyError(f"{folder}: no activations for {', '.join(unknown)}; stored: {', '.join(stored)}")
    tensors: Mapping[str, torch.Tensor]
    if lazy:
        tensors = _LazyTensors(folder, header, wanted)
    else:
        tensors = {hook: _load_hook(folder, header, hook) for hook in wanted}
    meta = dict(header.get("meta", {}))
    meta.update(dtype=header["dtype"], created_with=header.get("created_with", {}), path=str(folder))
    return Activations(
        tensors=tensors,
        case_ids=list(header["case_ids"]),
        labels=list(header["labels"]),
        position=header["position"],
        fingerprint=Fingerprint.from_dict(header["fingerprint"]),
        meta=meta,
    )
