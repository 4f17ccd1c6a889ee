"""Reference bank folders under a banks root: list, rename, delete.

Reads ``bank.json`` files alone (no torch, no model stack), so ``references list`` and the
dashboard's bank picker start fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from adaptclip_med.errors import InputError
from adaptclip_med.volume.bank.format import BANK_JSON


def list_banks(root: Path) -> list[dict[str, Any]]:
    """Summaries of the banks under ``root`` (for the CLI and the dashboard)."""
    banks = []
    for meta_file in sorted(Path(root).glob(f"*/{BANK_JSON}")):
        if meta_file.parent.name.startswith("."):  # a build in progress (staging) is not a bank yet
            continue
        meta = json.loads(meta_file.read_text())
        banks.append({"name": meta.get("name"), "path": str(meta_file.parent), "scans": len(meta.get("scans", [])),
                      "method": (meta.get("model") or {}).get("method", "adaptclip"),
                      "class_name": (meta.get("model") or {}).get("class_name"),
                      "key": meta.get("key"), "created": meta.get("created"), "preprocessing": meta.get("preprocessing"),
                      "calibrated": meta.get("calibration") is not None, "grid": meta.get("grid")})
    return banks


def bank_dir(root: Path, name: str) -> Path:
    """The folder of bank ``name`` under ``root``; a name that is not a plain folder name (a path,
    a hidden name that would collide with build staging) is refused."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise InputError(f"bank name '{name}' must be a plain folder name")
    return Path(root) / name


def rename_bank(root: Path, old: str, new: str) -> Path:
    """Rename the folder and the recorded name (atomically rewriting bank.json)."""
    from adaptclip_med.utils.atomic import atomic_write_text

    source, target = bank_dir(root, old), bank_dir(root, new)
    if not (source / BANK_JSON).is_file():
        raise InputError(f"no reference bank named '{old}' under {root}")
    if target.exists():
        raise InputError(f"a reference bank named '{new}' already exists")
    source.rename(target)
    meta = json.loads((target / BANK_JSON).read_text())
    meta["name"] = new
    atomic_write_text(target / BANK_JSON, json.dumps(meta, indent=1, sort_keys=True, default=str))
    return target


def delete_bank(root: Path, name: str) -> None:
    """Remove bank ``name`` and everything in its folder."""
    folder = bank_dir(root, name)
    if not (folder / BANK_JSON).is_file():
        raise InputError(f"no reference bank named '{name}' under {root}")
    shutil.rmtree(folder)
