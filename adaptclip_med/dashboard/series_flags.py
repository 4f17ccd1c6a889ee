"""Why a discovered series should not be taken for a normal scan: label maps and series with findings.

Both pickers ask (the reference library's normal-scan picker, where a flagged series would poison
a bank, and the worklist's "open a study" picker, where a label map is no study to score).  The
label-map check reads the NIfTI once per session; the findings come from the store (confirmed
sign-offs) and the worklist (results whose map reaches their threshold).
"""

from __future__ import annotations

import streamlit as st

from adaptclip_med.review.discovery import Candidate, finding_reason, label_map_reason

from adaptclip_med.dashboard import state

LABEL_CHECKS = "lib_label_checks"  # session: candidate key -> label-map reason ("" when an image)
FLAG = "⚠ "


def series_warnings(ctx: state.Context, candidates: list[Candidate], findings: bool = True) -> dict[str, str]:
    """Candidate key -> why it is not a normal scan; ``findings=False`` asks about label maps only."""
    cache: dict[str, str] = st.session_state.setdefault(LABEL_CHECKS, {})
    decisions = ctx.store.statuses() if findings else {}
    above = {e.study_key for e in state.worklist(ctx) if e.mask_voxels} if findings else set()
    found: dict[str, str] = {}
    for c in candidates:
        if c.key not in cache:
            cache[c.key] = label_map_reason(c)
        reason = cache[c.key] or (finding_reason(c, decisions, above) if findings else "")
        if reason:
            found[c.key] = reason
    return found


def flagged_label(candidate: Candidate, warnings: dict[str, str], text: str | None = None) -> str:
    """The picker's label of a candidate, with the warning sign in front when it is flagged."""
    return (FLAG if candidate.key in warnings else "") + (candidate.label if text is None else text)
