"""Worklist: scored studies ranked by score with their review status, and opening other studies."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from adaptclip_med.review.store import STATUS_LABELS
from adaptclip_med.review.worklist import WorklistEntry, build_worklist, discover_results, study_entry

from review_ui import open_study, state


def worklist_entries(ctx: state.Context) -> list[WorklistEntry]:
    """Batch/score result folders, the dashboard's own output, and studies scored in the dashboard."""
    entries: list[WorklistEntry] = []
    for folder in (*ctx.config.results, ctx.config.output):
        if folder.is_dir():
            entries.extend(discover_results(folder, ctx.readable))
    for key, output_dir in ctx.store.registered_studies():
        entry = study_entry(output_dir, key) if output_dir is not None and ctx.readable.contains(output_dir) else None
        if entry is not None:
            entries.append(entry)
    return build_worklist(entries, ctx.store.statuses())


def render(ctx: state.Context) -> None:
    st.header("Worklist")
    entries = worklist_entries(ctx)
    counts = {code: sum(1 for e in entries if e.status == code) for code in STATUS_LABELS}
    for column, (code, label) in zip(st.columns(len(STATUS_LABELS)), STATUS_LABELS.items()):
        column.metric(label, counts[code])
    shown_status = st.multiselect("Show", list(STATUS_LABELS), default=list(STATUS_LABELS), key="wl_status",
                                  format_func=STATUS_LABELS.get)
    shown = [e for e in entries if e.status in shown_status]
    if not entries:
        st.info("No scored studies yet. Run `adaptclip-med batch ... --out DIR` and start the dashboard with "
                "`--results DIR`, or open a study below and score it here.")
    elif shown:
        table = pd.DataFrame([{"rank": entries.index(e) + 1, "study": e.study_key, "score": e.score,
                               "top slice": e.top_slice, "series": e.series, "scoring": e.scoring_status,
                               "review": STATUS_LABELS.get(e.status, e.status)} for e in shown])
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0,
                                                                              format="%.3f")})
        openable = [e for e in shown if e.scoring_status == "done"]
        if openable:
            labels = {e.study_key: f"#{entries.index(e) + 1}  {e.study_key}  score {e.score:.3f}  "
                                   f"[{STATUS_LABELS.get(e.status, e.status)}]" if e.score is not None else e.study_key
                      for e in openable}
            left, right = st.columns([4, 1], vertical_alignment="bottom")
            pick = left.selectbox("Study", list(labels), format_func=labels.get, key="wl_pick")
            right.button("Open in viewer", key="wl_open", type="primary", on_click=state.request_open,
                         args=("worklist", pick), width="stretch")
    st.divider()
    open_study.render_open_panel(ctx)
