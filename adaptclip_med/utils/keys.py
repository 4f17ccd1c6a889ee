"""Study keys that become path components: one validator for every place that reads them.

Keys are read back from files a user (or an attacker) can edit: a batch ``worklist.csv``, a
``study.json``, a journal.  Joined into a path unchecked, ``../../tmp/x`` would write outside the
output folder.  Keys the project makes are 16 hex digits; folder names used as keys are plain
names.  Anything else is refused before it touches the file system.
"""

from __future__ import annotations

import re
from pathlib import Path

from adaptclip_med.errors import PathNotAllowedError

#: Letters, digits, '_', '-' and '.', starting with a letter or digit; at most 128 characters.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_key(key: object) -> bool:
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None and ".." not in key


def check_key(key: object, what: str = "study key") -> str:
    """``key`` if it is safe as one path component, else :class:`PathNotAllowedError` (the key
    itself is not quoted: it may carry anything)."""
    if not is_safe_key(key):
        raise PathNotAllowedError(f"{what} rejected: not a plain name (letters, digits, '_', '-', '.'; no '..' or '/')")
    return str(key)


def key_path(parent: str | Path, key: object, what: str = "study key") -> Path:
    """``parent / key`` after :func:`check_key`, and checked to resolve inside ``parent``."""
    parent = Path(parent)
    child = parent / check_key(key, what)
    base = parent.resolve()
    resolved = child.resolve()
    if resolved.parent != base:
        raise PathNotAllowedError(f"{what} rejected: the folder it names lies outside the output folder")
    return child
