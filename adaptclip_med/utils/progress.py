"""Progress bars for long work (encoding scans, scoring studies, batches).

One wrapper so every command shows the same kind of bar on stderr, and so tests and services can
silence them with ADAPTCLIP_MED_PROGRESS=0.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("ADAPTCLIP_MED_PROGRESS", "1") != "0"


def nested_off_terminal() -> bool:
    """True when a bar is already open and stderr is not a terminal (a log file, a pipe): a second
    bar would be drawn with cursor-up escapes, which a log shows as "[A" fragments.  The outer bar
    (the batch's studies) then carries the progress alone."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return not terminal and bool(getattr(tqdm, "_instances", None))


def progress_bar(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True,
                disable=not progress_enabled() or nested_off_terminal())
