"""A reference bank checks its own consistency when opened.

At build time every feature file is stamped (safetensors metadata) with the build id and the
bank key (model identity + preprocessing, the window included), and ``bank.json`` records the
build id, each file's size, and the build id the calibration was computed on.  Opening a bank
compares them: features of another build or another window, a file changed or truncated after
the build, or a calibration computed on other features is refused in one line naming the part,
instead of scoring against a mix.  Banks built before this check (no build id) open as before.

Sizes, not hashes, are compared at open: hashing gigabytes of features on every open would cost
more than the scoring of a small study; the build-id and key stamps catch mixed builds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adaptclip_med.errors import InputError

BUILD_ID = "build_id"
BANK_KEY = "bank_key"


def file_stamp(build_id: str, key: str) -> dict[str, str]:
    """The safetensors metadata every feature file of a build carries."""
    return {BUILD_ID: build_id, BANK_KEY: key}


def manifest(folder: Path, files: list[str]) -> dict[str, int]:
    """``{file: size in bytes}`` of the bank's feature files, recorded in ``bank.json``."""
    return {name: os.path.getsize(Path(folder) / name) for name in files}


def consistency_problem(root: Path, meta: dict[str, Any],
                        read_stamps: Callable[[], dict[str, dict[str, str] | None]]) -> str | None:
    """Why the bank at ``root`` is not one consistent build, or None.  Sizes are checked first
    (a changed file may not even open); ``read_stamps`` then gives each feature file's metadata
    (None when the file has none)."""
    build_id = meta.get(BUILD_ID)
    if build_id is None:
        return None  # built before the stamps existed
    for name, expected in (meta.get("manifest") or {}).items():
        path = Path(root) / name
        actual = os.path.getsize(path) if path.is_file() else None
        if actual is None:
            return f"{name} is missing"
        if actual != expected:
            return f"{name} changed after the build ({actual} bytes, {expected} when built)"
    for name, stamp in read_stamps().items():
        stamp = stamp or {}
        if stamp.get(BUILD_ID) != build_id:
            return f"{name} comes from another build than bank.json"
        if stamp.get(BANK_KEY) != meta.get("key"):
            return f"{name} was encoded with other settings (model or window) than bank.json records"
    calibration = meta.get("calibration")
    if isinstance(calibration, dict) and calibration.get(BUILD_ID) != build_id:
        return "the calibration was computed on another build's features"
    return None


def check_consistency(root: Path, meta: dict[str, Any],
                      read_stamps: Callable[[], dict[str, dict[str, str] | None]]) -> None:
    """One-line :class:`InputError` when the bank is not one consistent build (see above)."""
    problem = consistency_problem(root, meta, read_stamps)
    if problem is not None:
        raise InputError(f"reference bank '{meta.get('name')}' is inconsistent: {problem}; rebuild it with "
                         "'adaptclip-med references build'")
