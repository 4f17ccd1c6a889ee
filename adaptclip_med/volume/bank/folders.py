"""Listing reference banks from their ``bank.json`` files alone (no torch, no model stack), so
``references list`` and the dashboard's bank picker start fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def list_banks(root: Path) -> list[dict[str, Any]]:
    """Summaries of the banks under ``root`` (for the CLI and the dashboard)."""
    banks = []
    for meta_file in sorted(Path(root).glob("*/bank.json")):
        if meta_file.parent.name.startswith("."):  # a build in progress (staging) is not a bank yet
            continue
        meta = json.loads(meta_file.read_text())
        banks.append({"name": meta.get("name"), "path": str(meta_file.parent), "scans": len(meta.get("scans", [])),
                      "method": (meta.get("model") or {}).get("method", "adaptclip"),
                      "class_name": (meta.get("model") or {}).get("class_name"),
                      "key": meta.get("key"), "created": meta.get("created"), "preprocessing": meta.get("preprocessing"),
                      "calibrated": meta.get("calibration") is not None, "grid": meta.get("grid")})
    return banks
