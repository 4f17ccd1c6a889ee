"""The dashboard's changing actions, each checked against the acting person's permissions first.

Why here and not in the pages: hiding a button is not access control (a crafted websocket message
can still trigger a callback), so every action that changes banks or results goes through this
module, which refuses it (:class:`~adaptclip_med.review.access.AccessDenied`) for someone
without the role, and records it in the audit trail under their identity.  Sign-offs are checked
by :meth:`ReviewStore.sign_off` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from adaptclip_med.review.access import MANAGE, Identity, require
from adaptclip_med.review.store import ReviewStore

BANKS_AUDIT_KEY = "(reference banks)"  # audit rows about banks belong to no study


def score_study(who: Identity, store: ReviewStore, study_key: str, run: Callable[[], Any]) -> Any:
    """Start scoring (``run`` starts and does the work) only for someone with the ``manage`` role."""
    require(who, MANAGE)
    return run()


def record_scored(who: Identity, store: ReviewStore, study_key: str, detail: dict[str, Any]) -> None:
    """Audit a finished scoring run under the person who started it."""
    store.record_event(study_key, who, "score", detail)


def build_bank(who: Identity, store: ReviewStore, name: str, run: Callable[[], Path]) -> Path:
    """Build a reference bank (``run`` does the work) only for someone with the ``manage`` role."""
    require(who, MANAGE)
    path = run()
    store.record_event(BANKS_AUDIT_KEY, who, "bank_build", {"bank": Path(path).name})
    return path


def rename_bank(who: Identity, store: ReviewStore, root: Path, old: str, new: str) -> Path:
    from adaptclip_med.volume.reference_bank import rename_bank as rename

    require(who, MANAGE)
    path = rename(root, old, new)
    store.record_event(BANKS_AUDIT_KEY, who, "bank_rename", {"from": old, "to": new})
    return path


def delete_bank(who: Identity, store: ReviewStore, root: Path, name: str) -> None:
    from adaptclip_med.volume.reference_bank import delete_bank as delete

    require(who, MANAGE)
    delete(root, name)
    store.record_event(BANKS_AUDIT_KEY, who, "bank_delete", {"bank": name})
