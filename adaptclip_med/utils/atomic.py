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
from collections.abc import Callable, Iterator
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


def _os_error(path: Path, exc: OSError, what: str, kept: str) -> AdaptClipError:
    """One line for a failed write: disk full, or the OS's reason, and what was left as it was."""
    label = describe_path(path)
    if exc.errno in SPACE_ERRORS:
        return AdaptClipError(f"{label}: no space left on the device; {kept} (free space and retry)")
    return AdaptClipError(f"{label}: cannot write {what} ({exc.strerror or type(exc).__name__}); {kept}")


def _write_error(final: Path, exc: OSError) -> AdaptClipError:
    return _os_error(final, exc, "the file", "nothing was written")


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


#: Mode of files that carry patient identity (DICOM SEG / Parametric Map, the review database).
PRIVATE_FILE_MODE = 0o600


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, private: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return the final path.  ``private``: the file is
    created readable and writable by its owner only (it carries patient identity), from the
    first byte on: the temporary file is created with that mode, never widened later."""
    with atomic_path(path) as tmp:
        if private:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            os.fchmod(fd, PRIVATE_FILE_MODE)  # whatever the umask
            handle = os.fdopen(fd, "wb")
        else:
            handle = open(tmp, "wb")
        with handle:
            handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line endings) and return the final path."""
    return atomic_write_bytes(path, text.encode(encoding))


def _folder_error(folder: Path, exc: OSError) -> AdaptClipError:
    return _os_error(folder, exc, "the output folder", "the previous results were kept")


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_folder(final_dir: str | os.PathLike[str], keep: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield an empty hidden staging folder next to ``final_dir``; when the block succeeds it
    replaces ``final_dir`` whole (two renames: at every instant ``final_dir`` is the previous
    complete result or the new one).  On any failure the staging folder is removed and
    ``final_dir`` is left untouched.  Entries of the previous folder for which ``keep(name)`` is
    true (files that are not this writer's, e.g. a user's notes) are carried over into the new one.
    OS errors become one-line :class:`AdaptClipError`.  Stale staging folders of killed runs
    (``.staging-<name>-*``) are removed first."""
    final = Path(final_dir)
    parent = final.parent
    if final.exists() and Path.cwd().resolve().is_relative_to(final.resolve()):
        raise AdaptClipError(f"{describe_path(final)}: cannot replace the current working folder; "
                             "give the outputs a folder of their own")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".staging-{final.name}-*"):
            _remove_tree(stale)
        stage = parent / f".staging-{final.name}-{secrets.token_hex(4)}"
        stage.mkdir()
    except OSError as exc:
        raise _folder_error(final, exc) from exc
    try:
        yield stage
        carried: list[str] = []
        trash = parent / f".replaced-{final.name}-{secrets.token_hex(4)}"
        moved = False
        try:
            if final.is_dir():
                for entry in sorted(os.listdir(final)):
                    if keep is not None and keep(entry) and not (stage / entry).exists():
                        os.rename(final / entry, stage / entry)
                        carried.append(entry)
            if final.exists():
                os.rename(final, trash)
                moved = True
            os.rename(stage, final)
        except OSError:
            if moved:
                os.rename(trash, final)
            for entry in carried:
                os.rename(stage / entry, final / entry)
            raise
        fsync_dir(parent)
        if moved:
            _remove_tree(trash)
    except OSError as exc:
        _remove_tree(stage)
        raise _folder_error(final, exc) from exc
    except BaseException:
        _remove_tree(stage)
        raise


def ensure_writable_folder(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove it writable (a probe file is created and removed);
    otherwise one-line :class:`AdaptClipError` naming the folder and the reason."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if exc.errno in SPACE_ERRORS:
            raise AdaptClipError(f"{describe_path(folder)}: no space left on the device for the {what}") from exc
        reason = exc.strerror or type(exc).__name__
        raise AdaptClipError(f"{describe_path(folder)}: the {what} is not writable ({reason})") from exc
    return folder
