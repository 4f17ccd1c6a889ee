"""Output folders this program owns: it writes only into a new or empty folder, or one it wrote.

Writing a study replaces its result files whole (``slices.csv``, ``study.json``...), and a batch
rewrites ``worklist.csv`` and ``errors.csv``; pointed at a folder holding a user's own file of the
same name, that replaced the user's file.  Every output folder therefore carries a marker file,
:data:`OWNER_MARKER`, written when the folder is claimed; a non-empty folder without it is refused
in one line.  Folders written by earlier versions (no marker) are recognised by their
``study.json``/``methods.json`` naming this software, or a batch state folder, and adopted.

The marker also keeps outputs from being read back as inputs: the DICOM scanner never descends
into a folder holding it (a batch whose ``--out`` lies inside its input tree).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils.redact import describe_path

OWNER_MARKER = ".adaptclip-med-output"
_MARKER_TEXT = "This folder holds outputs written by adaptclip-med; it rewrites files here.\n"
_SOFTWARE = "adaptclip-med"
_REPORTS = ("study.json", "methods.json")
_TRANSIENT_PREFIXES = (".write-probe-", ".tmp-")


class FolderNotOwnedError(AdaptClipError):
    """The output folder holds files this program did not write."""


def has_marker(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / OWNER_MARKER).is_file()


def _written_by_earlier_version(folder: Path) -> bool:
    for name in _REPORTS:
        try:
            report = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and (report.get("software") or {}).get("name") == _SOFTWARE:
            return True
    return (folder / ".batch").is_dir()  # a batch run's state folder (journals, scratch)


def _entries(folder: Path) -> list[str]:
    """What the folder holds besides probes, temporary files and the marker itself."""
    return sorted(name for name in os.listdir(folder)
                  if not name.startswith(_TRANSIENT_PREFIXES) and name != OWNER_MARKER)


def is_owned(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` may be written: it does not exist, is empty, or this program wrote it."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    # the marker is looked for again after listing: another rank of the same batch run may write it
    # (and its first outputs) between the first look and the listing
    return has_marker(folder) or not _entries(folder) or has_marker(folder) or _written_by_earlier_version(folder)


def require_owned(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """``folder`` if it may be written (see :func:`is_owned`), else a one-line refusal naming one
    of the files found there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FolderNotOwnedError(f"{describe_path(folder)}: the {what} is a file; give a new or empty folder")
    if not is_owned(folder):
        count = len(_entries(folder))  # counted, not named: a user's file names may hold identifiers
        raise FolderNotOwnedError(
            f"{describe_path(folder)}: the {what} holds {count} entr{'y' if count == 1 else 'ies'} adaptclip-med "
            f"did not write (no {OWNER_MARKER} marker); they could be overwritten, so give a new or empty folder")
    return folder


def mark_owned(folder: str | os.PathLike[str]) -> Path:
    """Write the marker into ``folder`` (created if needed); idempotent, safe for several ranks."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER_MARKER
    if not marker.is_file():
        marker.write_text(_MARKER_TEXT, encoding="utf-8")
    return marker


def claim_output_folder(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Refuse a folder holding files this program did not write, else create it and mark it."""
    require_owned(folder, what)
    mark_owned(folder)
    return Path(folder)
