"""Building a reference bank safely: one build per bank name at a time, each in its own staging.

Two builds of the same bank name used to share one staging folder (``.<name>.building``): one run
reported success for a bank holding the other run's brain-window features under bone-window
metadata, with a calibration matching neither.  Now

* a lock file per bank name (``.<name>.lock`` beside the banks, :mod:`filelock`) admits one build;
  a second build of that name is refused at once in one line (it would be overwritten anyway);
* every build writes into its own staging folder (``.<name>.building-<build id>``), swapped into
  place with two renames, so readers see the previous bank or the new one, never a mix;
* every file of the bank is stamped with the build id (see :mod:`.integrity`), so an
  inconsistent bank is refused when opened instead of scoring against mixed parts.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from adaptclip_med.errors import AdaptClipError


class BankBusyError(AdaptClipError):
    """Another process is building a bank of the same name."""


@dataclass(frozen=True)
class BuildSlot:
    """Where one build writes (``staging``) and its id (stamped into every file of the bank)."""

    staging: Path
    build_id: str


def lock_path(out_root: Path, name: str) -> Path:
    return Path(out_root) / f".{name}.lock"


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames (the old bank is removed afterwards)."""
    trash = final.parent / f".{final.name}.replaced-{secrets.token_hex(4)}"
    moved = False
    if final.exists():
        os.rename(final, trash)
        moved = True
    try:
        os.rename(staging, final)
    except OSError:
        if moved:
            os.rename(trash, final)
        raise
    if moved:
        shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def building_slot(out_root: Path, name: str, final: Path) -> Iterator[BuildSlot]:
    """Hold the bank name's lock, yield a private staging folder, and on success swap it in as
    ``final``; on failure the staging folder is removed and the previous bank is untouched.
    Staging folders of killed builds of this name are removed once the lock is held."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(out_root, name)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BankBusyError(f"reference bank '{name}' is being built by another process right now; wait for that "
                            "build to finish (or build under another name)") from None
    try:
        for stale in out_root.glob(f".{name}.building*"):
            shutil.rmtree(stale, ignore_errors=True)
        build_id = secrets.token_hex(8)
        staging = out_root / f".{name}.building-{build_id}"
        staging.mkdir()
        try:
            yield BuildSlot(staging, build_id)
            _swap_in(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.release()
