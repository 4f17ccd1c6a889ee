"""``adaptclip-med node status``: what the node has received, queued, scored, sent or failed.

Read from the queue database (another process may be running the node), printed by pseudonymous
study key only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.node.store import DB_NAME, STATES, NodeStore
from adaptclip_med.utils.redact import describe_path


def read_status(state_dir: Path) -> dict[str, Any]:
    """Counts per state, skipped instances by reason, and one row per study (oldest first)."""
    if not (Path(state_dir) / DB_NAME).is_file():
        raise AdaptClipError(f"{describe_path(state_dir)}: no node state here (no {DB_NAME}); has the node run "
                             f"with this state_dir?")
    with NodeStore(state_dir) as store:
        return {"counts": store.counts(), "skipped": store.skipped(),
                "studies": [row.__dict__ for row in store.rows()]}


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def format_status(status: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    counts = status["counts"]
    lines = ["studies: " + ", ".join(f"{counts[s]} {s}" for s in STATES)]
    skipped = status["skipped"]
    if skipped:
        lines.append("instances skipped: " + "; ".join(f"{n} x {reason}" for reason, n in skipped.items()))
    if status["studies"]:
        lines.append(f"{'study':<16}  {'state':<9}  {'inst':>5}  {'late':>4}  {'scored':>6}  {'sent':>4}  "
                     f"{'score':>7}  {'objects':>7}  {'age':>5}  last error")
    for row in status["studies"]:
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        lines.append(f"{row['key']:<16}  {row['state']:<9}  {row['instances']:>5}  {row['late_instances']:>4}  "
                     f"{row['score_attempts']:>6}  {row['send_attempts']:>4}  {score:>7}  {row['sent_objects']:>7}  "
                     f"{_age(now - row['last_received']):>5}  {row['last_error'][:120]}")
    return "\n".join(lines)
