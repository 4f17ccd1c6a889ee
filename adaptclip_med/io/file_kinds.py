"""Only regular files are read: a FIFO, a device, a socket or a symbolic-link loop is named, not opened.

Input trees come from exports, USB media and network shares; they can hold a named pipe (reading
it blocks forever), a link to ``/dev/zero`` (reading it never ends) or a link that points at
itself (``stat`` fails with ELOOP).  Every reader asks :func:`regular_file_problem` first or opens
through :func:`open_regular`, which checks the *opened* descriptor, so a file swapped between the
check and the read cannot slip through either.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from adaptclip_med.errors import InputError


class NotRegularFileError(InputError):
    """The path is not a regular file (the message is the bare reason; callers add the label)."""


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind_problem(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    for test, name in _KINDS:
        if test(mode):
            return f"not a regular file ({name})"
    return "not a regular file"


def _os_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "no such file (a broken symbolic link?)"
    return f"cannot open ({exc.strerror or type(exc).__name__})"


def regular_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` must not be read (not a regular file, a link loop, missing), or None."""
    try:
        return _kind_problem(os.stat(path).st_mode)
    except OSError as exc:
        return _os_problem(exc)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading, refusing anything but a regular file.

    The open itself never blocks (O_NONBLOCK, so a FIFO without a writer cannot hang it) and the
    kind is checked on the opened descriptor; the returned file reads normally."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise NotRegularFileError(_os_problem(exc)) from exc
    try:
        problem = _kind_problem(os.fstat(fd).st_mode)
        if problem is not None:
            raise NotRegularFileError(problem)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def require_regular_file(path: str | os.PathLike[str], label: str) -> Path:
    """``path`` if it is a regular file, else :class:`InputError` naming ``label`` and the reason."""
    problem = regular_file_problem(path)
    if problem is not None:
        raise InputError(f"{label}: {problem}")
    return Path(path)
