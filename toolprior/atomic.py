"""Atomic file writes: results appear whole or not at all, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# Test-only. The kill-and-resume tests (tests/test_kill_resume.py) SIGKILL a run the moment a named result file is in
# place: TOOLPRIOR_KILL_AFTER_WRITE=<file name> or <folder>/<file name>. A test polling the disk from outside would
# kill it somewhere after that point, a different place each time. Unset, this is one environment lookup per write.
KILL_AFTER_WRITE = "TOOLPRIOR_KILL_AFTER_WRITE"


def _kill_point(path: Path) -> None:
    wanted = os.environ.get(KILL_AFTER_WRITE)
    if wanted and wanted in (path.name, f"{path.parent.name}/{path.name}"):
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on clean exit it replaces `path`, on error it is deleted.

    >>> with atomic_open("out.jsonl") as f:
    ...     f.write("...")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; results are for reading by anyone the folder allows.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _kill_point(target)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically (UTF-8, LF line ends)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A staging folder beside `path`; on clean exit it replaces `path` whole (an old one is moved aside first and
    removed after), on error it is deleted. The staging folder is private (mkdtemp); chmod it to share it.

    >>> with atomic_folder("runs/x/adapter") as tmp:
    ...     (tmp / "weights.safetensors").write_bytes(b"...")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
