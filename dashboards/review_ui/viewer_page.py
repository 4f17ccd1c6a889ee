"""Viewer: slice navigation, window/level, overlay, score curve, matched normal slice, zoom.

The image area is an ``st.fragment``: moving through slices or changing the window reruns only
the fragment, not the page.  The threshold lives outside it on purpose: it changes the findings
the sign-off form lists, so it reruns the whole page.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from adaptclip_med.review.references import find_bank, matched_slice
from adaptclip_med.review.rendering import DISPLAY_SIZE, grey_rgb, overlay_slice, zoomed
from adaptclip_med.review.store import STATUS_LABELS
from adaptclip_med.review.study_data import ReviewStudy

from review_ui import open_study, scoring_panel, signoff, state, viewer_state
from review_ui.state import ALPHA, LEVEL, REF_SCAN, SLICE, STRETCH, THRESHOLD, WIDTH, WINDOW_PRESET, ZOOM, ZOOM_CENTRE

CHART_KEY = "score_curve"
STATUS_COLOURS = {"unread": "gray", "confirmed": "red", "false_positive": "orange", "normal": "green"}


def render(ctx: state.Context, loaded, model_problem: str | None) -> None:
    open_study.resolve_pending(ctx)
    if state.UNSCORED in st.session_state:
        scoring_panel.render(ctx, loaded, model_problem)
        return
    study: ReviewStudy | None = st.session_state.get(state.STUDY)
    if study is None:
        st.info("No study open: choose one on the Worklist page (or open one from the data roots or an upload).")
        return
    _header(ctx, study)
    _viewer(ctx, study)
    st.divider()
    signoff.render(ctx, study)


def _header(ctx: state.Context, study: ReviewStudy) -> None:
    status = ctx.store.status(study.study_key)
    st.subheader(f"Study {study.study_key} :{STATUS_COLOURS[status]}-badge[{STATUS_LABELS[status]}]")
    cols = st.columns([1, 1, 4])
    cols[0].metric("Study score", f"{study.score:.3f}")
    cols[1].metric("Slices", study.depth)
    cols[2].caption(f"{study.model_summary()}  \nmodel threshold {study.threshold:.3f} ({study.threshold_source or 'n/a'})")
    if study.volume is None:
        st.warning("The source images of this study were not found under the data roots: the anomaly map is shown "
                   "on a black background and the DICOM SEG export is unavailable.")
    st.slider("Mask threshold (anomaly map)", 0.0, 1.0, step=0.005, key=THRESHOLD, format="%.3f",
              help="Pixels at or above it form the mask and the findings; save it with the sign-off as an override.")


@st.fragment
def _viewer(ctx: state.Context, study: ReviewStudy) -> None:
    depth = study.depth
    options = viewer_state.window_options(study)
    nav = st.columns([1, 8, 1], vertical_alignment="bottom")
    nav[0].button("◀ Prev", key="prev_slice", on_click=viewer_state.step, args=(-1, depth), shortcut="ArrowLeft",
                  width="stretch", help="Previous slice (Left arrow)")
    nav[1].slider("Slice", 0, max(depth - 1, 1), key=SLICE, disabled=depth < 2)
    nav[2].button("Next ▶", key="next_slice", on_click=viewer_state.step, args=(1, depth), shortcut="ArrowRight",
                  width="stretch", help="Next slice (Right arrow)")
    if study.top_slices:
        jumps = st.columns(len(study.top_slices) + 1, vertical_alignment="center")
        jumps[0].caption("Highest slices:")
        for rank, (column, z) in enumerate(zip(jumps[1:], study.top_slices), start=1):
            column.button(f"#{rank}: slice {z}", key=f"top_{rank}", on_click=viewer_state.go_to, args=(z, depth),
                          width="stretch", type="primary" if st.session_state[SLICE] == z else "secondary")
    z = int(np.clip(st.session_state[SLICE], 0, depth - 1))
    image_col, ref_col, control_col = st.columns([5, 3, 2])
    with control_col:
        st.selectbox("Window", [*options, viewer_state.CUSTOM_WINDOW], key=WINDOW_PRESET,
                     on_change=viewer_state.apply_preset, args=(options,))
        st.number_input("Level", key=LEVEL, step=10.0, on_change=viewer_state.mark_custom)
        st.number_input("Width", key=WIDTH, min_value=1.0, step=10.0, on_change=viewer_state.mark_custom)
        st.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=ALPHA)
        st.checkbox("Stretch heat map", key=STRETCH,
                    help=f"Display only: colours scaled to the study maximum ({study.peak:.2f}); the "
                         "outline still marks the pixels at or above the threshold.")
        st.slider("Zoom", 1.0, 4.0, step=0.25, key=ZOOM)
        st.checkbox("Centre zoom on the hottest point", key=ZOOM_CENTRE)
    with image_col:
        st.image(_slice_image(study, z), caption=_slice_caption(study, z), width=DISPLAY_SIZE)
    with ref_col:
        _reference(ctx, study, z)
    _score_curve(study, z)


def _slice_image(study: ReviewStudy, z: int) -> np.ndarray:
    probability = study.probability[z]
    if study.volume is not None:
        base = viewer_state.current_window().apply(study.volume.array[z])
    else:
        base = np.zeros(probability.shape, dtype=np.float32)
    rgb = overlay_slice(base, probability, float(st.session_state[THRESHOLD]), float(st.session_state[ALPHA]),
                        viewer_state.heat_gain(study))
    centre = None
    if st.session_state[ZOOM_CENTRE] and probability.max() > 0:
        centre = tuple(float(v) for v in np.unravel_index(int(np.argmax(probability)), probability.shape))
    return zoomed(rgb, float(st.session_state[ZOOM]), centre, spacing_yx=study.spacing[1:])


def _slice_caption(study: ReviewStudy, z: int) -> str:
    score = study.slice_scores[z]
    scored = f"slice score {score:.3f}" if np.isfinite(score) else "not scored (no body on this slice)"
    above = int((study.probability[z] >= st.session_state[THRESHOLD]).sum())
    return f"slice {z} / {study.depth - 1} · {scored} · {above} px above threshold"


def _reference(ctx: state.Context, study: ReviewStudy, z: int) -> None:
    name = study.bank_name
    if name is None:
        st.caption("Zero-shot result: no normal reference slices were used.")
        return
    path = find_bank(ctx.config.banks_root, name)
    if path is None:
        st.caption(f"Reference bank '{name}' is not under the banks folder; matched slices cannot be shown.")
        return
    bank = state.open_bank(path)
    if len(bank.scans) > 1:
        st.selectbox("Reference scan", list(range(len(bank.scans))), key=REF_SCAN, format_func=lambda i: f"normal scan {i + 1}")
    match = matched_slice(bank, study, z, int(st.session_state.get(REF_SCAN, 0)))
    if match is None:
        st.caption("No body on this slice: nothing to match.")
        return
    st.image(grey_rgb(match.thumbnail, DISPLAY_SIZE * 3 // 5), caption=match.caption(name))


def _score_curve(study: ReviewStudy, z: int) -> None:
    frame = pd.DataFrame({"slice": np.arange(study.depth),
                          "score": np.where(np.isfinite(study.slice_scores), study.slice_scores, np.nan)})
    pick = alt.selection_point(name="pick", fields=["slice"], on="click", nearest=True)
    x = alt.X("slice:Q", title="slice", scale=alt.Scale(domain=[0, max(study.depth - 1, 1)]),
              axis=alt.Axis(tickMinStep=1, format="d"))
    y = alt.Y("score:Q", title="slice anomaly score")
    line = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=18, opacity=0.5)).encode(
        x=x, y=y, tooltip=["slice", alt.Tooltip("score:Q", format=".3f")]).add_params(pick)
    top = alt.Chart(frame[frame["slice"].isin(study.top_slices)]).mark_point(color="#e4572e", size=90, filled=True).encode(x=x, y=y)
    here = alt.Chart(pd.DataFrame({"slice": [z]})).mark_rule(color="#f5b700", strokeWidth=2).encode(x="slice:Q")
    st.caption("Slice scores along the axis (red: highest slices; yellow: current). Click the curve to jump there.")
    st.altair_chart((line + top + here).properties(height=170), key=CHART_KEY, on_select=lambda: viewer_state.jump_from_chart(CHART_KEY, study.depth),
                    selection_mode="pick", width="stretch")
