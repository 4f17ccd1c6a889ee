"""Printable, non-identifying names for files.

DICOM exports often name folders and files after Study/Series/SOP Instance UIDs, which identify a
patient's examination.  Every log line, exception and report therefore names a file through
:func:`describe_path`, which swaps UID-like path components for a short stable hash: two messages
about the same file still match, but the UID never leaves the process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: A DICOM UID is digits separated by dots; real ones are long (org root + suffix).  Requiring at
#: least one dot and 10 characters avoids hashing ordinary names such as ``2024`` or ``v1.2``.
_UID_LIKE = re.compile(r"^(?=.{10,}$)\d+(?:\.\d+)+$")
#: File names are often ``<UID>.dcm``: the UID part is still identifying.
_KNOWN_SUFFIXES = (".dcm", ".dicom", ".ima", ".nii.gz", ".nii", ".json", ".png")


def _hash8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def redact_component(name: str) -> str:
    """One path component with a UID-like stem replaced by ``uid-<8 hex>`` (suffix kept)."""
    lower = name.lower()
    for suffix in _KNOWN_SUFFIXES:
        if lower.endswith(suffix) and _UID_LIKE.match(name[: -len(suffix)]):
            return f"uid-{_hash8(name[: -len(suffix)])}{name[-len(suffix):]}"
    if _UID_LIKE.match(name):
        return f"uid-{_hash8(name)}"
    return name


def _inside(path: Path, root: Path) -> Path:
    """``path`` relative to ``root`` when it lies inside it, else unchanged.  The lexical test comes
    first: a link inside the input tree (to ``/dev/zero``, or to itself) is named where it lies,
    not where it points (resolving a link loop raises)."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return path


def describe_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """A label for ``path`` that is safe to print: relative to ``root`` when it lies inside it,
    with UID-like components hashed."""
    p = Path(path)
    if root is not None:
        p = _inside(p, Path(root))
    parts = [redact_component(part) for part in p.parts]
    if not parts:
        return "."
    anchor = p.anchor
    body = [part for part in parts if part != anchor]
    text = "/".join(body)
    return (anchor.replace("\\", "/") + text) if anchor else text


def pseudonymous_key(*parts: str) -> str:
    """A stable 16-hex key for identifying values (e.g. Study UID) that must not be shown.

    Parts are joined with a separator that cannot occur in UIDs so ('1.2', '3') and ('1', '2.3')
    give different keys."""
    joined = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


#: Libraries that warn about malformed header values quote them (patient names included).
_HEADER_LIBRARIES = ("pydicom", "highdicom")


@contextmanager
def header_warnings_silenced() -> Iterator[None]:
    """Keep header-quoting warnings of the DICOM libraries (e.g. highdicom's check of a patient name
    it copies into a SEG) out of logs and terminals, which must stay free of patient identifiers;
    callers report their own reasons instead."""
    loggers = [logging.getLogger(name) for name in _HEADER_LIBRARIES]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for name in _HEADER_LIBRARIES:
            warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)  # pydicom logs decoder failures at ERROR, with tracebacks
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def relative_label(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``path`` relative to ``root`` (lexically; the bare name when ``root`` is a file)."""
    root_path = Path(root)
    return os.path.relpath(os.path.abspath(path), os.path.abspath(root_path)) if root_path.is_dir() else Path(path).name


def file_key(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The pseudonymous name of a file of an input tree: ``file-<16 hex>`` from its path relative
    to ``root``.  Batch results name files by it, never by their path: folder and file names of
    exports often hold patient names.  The operator finds the file again through the run's
    owner-only file index (see :mod:`adaptclip_med.batch.file_index`)."""
    return f"file-{pseudonymous_key('file', relative_label(path, root))}"
