"""Study output folders appear whole or not at all.

A study is scored into ``.batch/staging-rank-NNN/<key>`` and only renamed to ``<out>/<key>`` once
every file (``study.json`` last) is written.  A run killed mid-study therefore leaves nothing in
``<out>/<key>`` but possibly a staging folder, which the same rank deletes when it starts again.
Replacing an earlier (unfinished or redone) folder goes through a rename to a trash name first, so
at every instant ``<out>/<key>`` is either absent or complete.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from adaptclip_med.batch.journal import STATE_DIR
from adaptclip_med.utils.atomic import SPACE_ERRORS, fsync_dir
from adaptclip_med.utils.redact import pseudonymous_key

def staging_root(out_dir: Path, rank: int) -> Path:
    return Path(out_dir) / STATE_DIR / f"staging-rank-{rank:03d}"


def reset_staging(out_dir: Path, rank: int) -> Path:
    """Remove what a killed run of this rank left behind; return the empty staging root."""
    root = staging_root(out_dir, rank)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def scratch_root(out_dir: Path, scratch_dir: Path | None, rank: int) -> Path:
    """This rank's private scratch folder (studies fetched from a PACS): under the output folder's
    state folder, or under ``scratch_dir`` in a folder named after the output folder, never in the
    shared system temp, so a killed run's leftovers are found and removed by the next one."""
    if scratch_dir is None:
        return Path(out_dir) / STATE_DIR / f"scratch-rank-{rank:03d}"
    tag = pseudonymous_key("scratch", str(Path(out_dir).resolve()))[:12]
    return Path(scratch_dir) / f".adaptclip-scratch-{tag}-rank-{rank:03d}"


def reset_scratch(out_dir: Path, scratch_dir: Path | None, rank: int) -> Path:
    """Remove what a killed run of this rank left in its scratch folder; return it, empty and private."""
    root = scratch_root(out_dir, scratch_dir, rank)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, mode=0o700)
    return root


def publish(staged: Path, final: Path) -> Path:
    """Move a complete study folder into place, replacing any previous one, durably."""
    trash = staged.with_name(staged.name + ".replaced")
    shutil.rmtree(trash, ignore_errors=True)
    if final.exists():
        os.rename(final, trash)
    os.rename(staged, final)
    fsync_dir(final.parent)
    shutil.rmtree(trash, ignore_errors=True)
    return final


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` or anything in its cause/context chain is a full disk or quota."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in SPACE_ERRORS:
            return True
        if isinstance(current, sqlite3.OperationalError) and "disk is full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
