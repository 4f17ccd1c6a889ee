"""The dashboard's changing actions, each checked against the acting person's permissions first.

Why here and not in the pages: hiding a button is not access control (a crafted websocket message
can still trigger a callback), so every action that changes banks or results goes through this
module, which refuses it (:class:`~adaptclip_med.review.access.AccessDenied`) for someone
without the role, and records it in the audit trail under their identity.  Sign-offs are checked
by :meth:`ReviewStore.sign_off` itself; sending a signed decision to the PACS needs the sign-off role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from adaptclip_med.review.access import MANAGE, SIGN_OFF, Identity, require
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
    from adaptclip_med.volume.bank.folders import rename_bank as rename

    require(who, MANAGE)
    path = rename(root, old, new)
    store.record_event(BANKS_AUDIT_KEY, who, "bank_rename", {"from": old, "to": new})
    return path


def delete_bank(who: Identity, store: ReviewStore, root: Path, name: str) -> None:
    from adaptclip_med.volume.bank.folders import delete_bank as delete

    require(who, MANAGE)
    delete(root, name)
    store.record_event(BANKS_AUDIT_KEY, who, "bank_delete", {"bank": name})


def send_to_pacs(who: Identity, store: ReviewStore, study_key: str, revision: int, files: list[Path],
                 destination: str) -> int:
    """Send a signed-off revision's reviewed SEG and SR to the configured PACS (``sign_off`` role);
    the attempt is audited either way, with the destination and the objects' file names."""
    from adaptclip_med.review.pacs_send import PacsDestination, PacsSendError, send

    require(who, SIGN_OFF)
    target = PacsDestination.parse(destination)
    detail = {"destination": target.describe(), "protocol": "C-STORE" if target.kind == "dimse" else "STOW-RS",
              "files": sorted(Path(f).name for f in files), "revision": revision}
    try:
        accepted = send(list(files), target)
    except PacsSendError as exc:
        store.record_event(study_key, who, "pacs_send_failed", {**detail, "reason": str(exc)})
        raise
    store.record_event(study_key, who, "pacs_send", {**detail, "accepted": accepted})
    return accepted
