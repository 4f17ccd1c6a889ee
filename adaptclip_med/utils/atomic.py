"""Atomic file writes: a result file is either complete or absent, never half-written.

Readers (a PACS watcher, the dashboard, a batch job resuming after a crash) may look at an output
folder at any moment.  Writing to a hidden temporary file in the same folder, fsyncing it and
renaming it over the final name makes the switch atomic on POSIX file systems.  Failures such as
a full disk become one-line :class:`AdaptClipError` messages and leave nothing behind.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils.redact import describe_path

SPACE_ERRORS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not supported everywhere (e.g. some network shares)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(final: Path, exc: OSError) -> AdaptClipError:
    label = describe_path(final)
    if exc.errno in SPACE_ERRORS:
        return AdaptClipError(f"{label}: no space left on the device; nothing was written (free space and retry)")
    reason = exc.strerror or type(exc).__name__
    return AdaptClipError(f"{label}: cannot write the file ({reason}); nothing was written")


@contextmanager
def atomic_path(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``final_path``; on success it is fsynced and renamed over it.

    The temporary name keeps the final name as its tail so writers that pick a format from the
    extension (nibabel's ``.nii.gz``, PIL's ``.png``) behave the same.  On any error the temporary
    file is removed; OS errors are re-raised as one-line :class:`AdaptClipError`.
    """
    final = Path(final_path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(final, exc) from exc
    tmp = final.with_name(f".tmp-{secrets.token_hex(4)}.{final.name}")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(final, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings) and return the final path."""
    return atomic_write_bytes(path, text.encode(encoding))
