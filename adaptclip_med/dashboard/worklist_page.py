"""Worklist: studies ranked by score with their review status; click a row to open it (or score it).

Rows that cannot be opened (damaged or incomplete results) are flagged and listed after the
readable ones, never ranked first; so are studies not comparable with their reference bank (no
study score; the reason in the "comparability" column); studies found under the data roots
without results are listed with a "score" action.  The open study is in the URL (``?study=<key>``): a deep link.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from adaptclip_med.review.store import STATUS_LABELS
from adaptclip_med.review.worklist import WorklistEntry

from adaptclip_med.dashboard import open_study, state
from adaptclip_med.dashboard.plain import md_text

TABLE_KEY = "wl_table"


def score_bar_range(scores: list[float | None]) -> tuple[float, float]:
    """Bar range of the score column: the listed scores' own span (a 0-1 scale drew 0.140 and 0.145
    as the same bar), widened a little so the lowest still shows a sliver."""
    values = [float(s) for s in scores if s is not None and s == s]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    span = max(high - low, 1e-6)
    return max(0.0, low - 0.1 * span), high


def _action(entry: WorklistEntry) -> str:
    if entry.openable:
        return "open"
    if not entry.scored:
        return "score"
    return entry.problem or entry.scoring_status


def _short_comparability(entry: WorklistEntry) -> str:
    """"not comparable" / "partly comparable" for the study picker ("" when comparable or unknown)."""
    status = entry.comparability.split(":", 1)[0]
    return status if status in ("not comparable", "partly comparable") else ""


def _open_entry(entry: WorklistEntry) -> None:
    state.request_open("worklist", entry.study_key)


def render(ctx: state.Context) -> None:
    entries = state.worklist(ctx)
    head = st.columns([2, *[1] * len(STATUS_LABELS)], vertical_alignment="center")
    head[0].subheader("Worklist")
    for column, (code, label) in zip(head[1:], STATUS_LABELS.items()):
        column.metric(label, sum(1 for e in entries if e.status == code and e.scored))
    shown_status = st.multiselect("Show", list(STATUS_LABELS), default=list(STATUS_LABELS), key="wl_status",
                                  format_func=STATUS_LABELS.get, label_visibility="collapsed")
    shown = [e for e in entries if e.status in shown_status]
    if not entries:
        st.info("No studies yet. Run `adaptclip-med batch ... --out DIR` and start the dashboard with "
                "`--results DIR`, or open a study below and score it here.")
    elif shown:
        ranked = [e for e in entries if e.openable and e.score is not None]
        table = pd.DataFrame([{
            "rank": str(ranked.index(e) + 1) if e in ranked else "—",
            **({"patient": e.patient or "—"} if any(x.patient for x in shown) else {}),
            "description": e.description or "—",
            "date": e.study_date or "—", "modality": e.modality or "—", "series": e.series or "—",
            "slices": e.slices, "score": e.score if e.openable else None,
            "flag": (e.flag or "—") if e.openable else "—", "method": e.method or "—",
            "status": STATUS_LABELS.get(e.status, e.status) if e.scored else "—",
            "comparability": e.comparability or "—", "action": _action(e),
            "study": e.study_key} for e in shown])
        score_low, score_high = score_bar_range([e.score for e in shown if e.openable])
        st.caption("Click a row to open the study (or to score it).")
        event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                             key=TABLE_KEY, height=min(38 + 35 * len(shown), 460),
                             column_config={"score": st.column_config.ProgressColumn(
                                                "score", min_value=score_low, max_value=score_high, format="%.3f",
                                                help="Study score; the bar spans the lowest to the highest score listed"),
                                            "flag": st.column_config.TextColumn(
                                                "flag", width="small",
                                                help="normal / abnormal at the operating (pixel) threshold: abnormal "
                                                     "when any voxel of the map reaches it"),
                                            "rank": st.column_config.TextColumn("rank", width="small"),
                                            "slices": st.column_config.NumberColumn("slices", format="%d", width="small")})
        rows = (getattr(event, "selection", None) or {}).get("rows", []) if event is not None else []
        if rows:
            entry = shown[rows[0]]
            if entry.openable or not entry.scored:
                _open_entry(entry)
                st.rerun()
            st.error(f"Study {md_text(entry.study_key)}: {md_text(entry.problem or entry.scoring_status)}; it cannot be opened.")
        openable = [e for e in shown if e.openable or not e.scored]
        if openable:
            labels = {e.study_key: (f"#{ranked.index(e) + 1}  " if e in ranked else "") +
                      f"{e.description or e.study_key}  " + (f"score {e.score:.3f}  " if e.score is not None else "") +
                      (f"({_short_comparability(e)})  " if _short_comparability(e) else "") +
                      (f"[{STATUS_LABELS.get(e.status, e.status)}]" if e.scored else "[not scored]") for e in openable}
            left, right = st.columns([4, 1], vertical_alignment="bottom")
            pick = left.selectbox("Study", list(labels), format_func=labels.get, key="wl_pick")
            right.button("Open in viewer", key="wl_open", type="primary", on_click=state.request_open,
                         args=("worklist", pick), width="stretch")
    st.divider()
    open_study.render_open_panel(ctx)
