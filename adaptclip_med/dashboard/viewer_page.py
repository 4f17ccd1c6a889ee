"""The reading room: browser viewer + linked reference + score strip on the left, sign-off on the right.

Everything a reader needs fits one 1440 x 900 screen.  The viewer (``viewer.py``) scrolls,
windows and blends in the browser; it sits in an ``st.fragment``, so the state it reports back
(debounced) reruns only the fragment, which stores it in the session and the URL.  The threshold
is a page-level widget on purpose: it changes the findings the sign-off lists and the outline.
"""

from __future__ import annotations

import streamlit as st

from adaptclip_med.outputs.thresholds import flag_of, slice_score_threshold
from adaptclip_med.review import viewer_data
from adaptclip_med.review.references import find_bank
from adaptclip_med.review.store import STATUS_LABELS
from adaptclip_med.review.studies import available_maps, method_of
from adaptclip_med.review.study_context import may_see_context, patient_context
from adaptclip_med.review.study_data import ReviewStudy

from adaptclip_med.dashboard import open_study, scoring_panel, signoff, state, viewer_state
from adaptclip_med.dashboard.plain import md_text
from adaptclip_med.dashboard.viewer import reference_payload, study_payload, viewer

STATUS_COLOURS = {"unread": "gray", "confirmed": "red", "false_positive": "orange", "normal": "green"}
VIEWER_HEIGHT = 700
COMPONENT_KEY = "reading_viewer"


def render(ctx: state.Context, loaded, model_problem: str | None) -> None:
    open_study.resolve_pending(ctx)
    if state.UNSCORED in st.session_state:
        scoring_panel.render(ctx, loaded, model_problem)
        return
    study: ReviewStudy | None = st.session_state.get(state.STUDY)
    if study is None:
        st.info("No study open: choose one on the Worklist page (or open one from the data roots or an upload).")
        return
    viewer_col, side_col = st.columns([72, 28], gap="small")
    with side_col:
        _header(ctx, study)
    with viewer_col:
        _viewer(ctx, study)
    with side_col:
        signoff.render(ctx, study)


def _header(ctx: state.Context, study: ReviewStudy) -> None:
    status = ctx.store.status(study.study_key)
    description = (study.report.get("review_info") or {}).get("description") or ""
    st.markdown(f"**{md_text(description) if description else 'Study'}** `{study.study_key[:12]}` "
                f":{STATUS_COLOURS[status]}-badge[{STATUS_LABELS[status]}]")
    flag = flag_of(study.report)
    slice_threshold = slice_score_threshold(((study.report.get("scoring") or {}).get("reference_bank") or {}).get("calibration"))
    score = f"study score **{study.score:.3f}**" if study.score == study.score else "**no study score**"
    st.caption(score + (f" · **{flag}** at the operating pixel threshold" if flag else "") +
               f" · {study.depth} slices · {method_of(study.report)}  \n"
               f"pixel threshold {study.threshold:.3f} ({study.threshold_source or 'n/a'})" +
               (f" · slice score threshold {slice_threshold:.3f} (normal maximum)" if slice_threshold is not None else "") +
               f"  \n{study.model_summary()}")
    _comparability(study)
    if study.volume is None:
        st.warning("Source images not found under the data roots: the map is shown on a black background; "
                   "no DICOM SEG export.", icon=":material/warning:")
    top = pixel_slider_top(study)
    if float(st.session_state.get(state.THRESHOLD, 0.0)) > top:
        st.session_state[state.THRESHOLD] = top
    st.slider("Pixel (mask) threshold", 0.0, top, step=pixel_slider_step(top), key=state.THRESHOLD, format="%.4f",
              help="A map value: pixels at or above it form the mask outline and the findings (not comparable with "
                   "slice scores); save it with the sign-off as an override. The slider spans the values this map reaches.")


def pixel_slider_top(study: ReviewStudy) -> float:
    """Top of the pixel-threshold slider: the map's own range (maps peak near 0.08, so a 0-1 slider
    left the useful part a few pixels wide), never below the model's threshold."""
    return float(round(min(1.0, max(1.25 * study.peak, 1.25 * study.threshold, 1e-3)), 4))


def pixel_slider_step(top: float) -> float:
    return float(max(round(top / 200.0, 5), 1e-5))


def _comparability(study: ReviewStudy) -> None:
    """The comparability guard's verdict (volume/comparability.py): red when the study is not
    comparable with its reference bank, amber when only some slices are (slices.csv lists which)."""
    line = study.comparability
    if line.startswith("not comparable"):
        st.error(f"{line}. The map compares this study with references it does not resemble: it is not a finding.",
                 icon=":material/block:")
    elif line.startswith("partly comparable"):
        st.warning(f"{line} (those slices have no map or do not count towards the score).", icon=":material/warning:")


@st.fragment
def _viewer(ctx: state.Context, study: ReviewStudy) -> None:
    maps = available_maps(study.study_key, study.output_dir)
    bank, bank_path = _bank(ctx, study)
    controls = st.columns([3, 3, 2, 2], vertical_alignment="center")
    if len(maps) > 1:
        labels = list(maps)
        current = next((label for label, folder in maps.items() if folder == study.output_dir), labels[0])
        picked = controls[0].selectbox("Anomaly map", labels, index=labels.index(current), key=state.MAP_PICK,
                                       label_visibility="collapsed", help="Results of the methods scored for this study")
        if maps[picked] != study.output_dir:
            open_study.open_sibling(ctx, study, maps[picked])
            st.rerun()
    else:
        controls[0].caption(f"map: {next(iter(maps), method_of(study.report))}")
    if bank is not None and len(bank.scans) > 1:
        controls[1].selectbox("Reference scan", list(range(len(bank.scans))), key=state.REF_SCAN,
                              format_func=lambda i: f"reference: normal scan {i + 1}", label_visibility="collapsed")
    elif bank is None:
        controls[1].caption(_no_reference_reason(ctx, study))
    controls[2].checkbox("Stretch heat map", key=state.STRETCH,
                         help=f"Display only: colours scaled to the study maximum ({study.peak:.2f}).")
    if study.volume is not None and ctx.config.model_configured:
        if controls[3].button("Score with…", key="score_other",
                              help="Score this study with another method or bank; the maps can then be switched here."):
            _score_again(study)
            st.rerun()
    threshold = float(st.session_state[state.THRESHOLD])
    method = method_of(study.report)
    payload = study_payload(study, threshold, method)
    reference = None
    if bank is not None:
        reference = reference_payload(bank, bank_path, int(st.session_state.get(state.REF_SCAN, 0) or 0), study,
                                      study.bank_name or "", ctx.data_roots)
    view = st.session_state[state.VIEW]
    reported = viewer(payload, reference=reference, state=view, state_nonce=st.session_state[state.VIEW_NONCE], jump=None,
                      presets=viewer_data.window_presets(viewer_state.window_options(study)),
                      heat_range=viewer_data.heat_range(study, bool(st.session_state.get(state.STRETCH))),
                      label=f"{study.study_key[:12]} · {method}", height=VIEWER_HEIGHT, key=COMPONENT_KEY,
                      context=context_lines(ctx, study))
    if viewer_state.adopt(reported):
        state.set_url(**viewer_state.to_url(st.session_state[state.VIEW]))


def context_lines(ctx: state.Context, study: ReviewStudy) -> list[str]:
    """Patient context for the corner text: only for a user the login established (see study_context)."""
    if not may_see_context(ctx.who, ctx.config.show_patient_names):
        return []
    found = patient_context(study.volume)
    return found.lines() if found is not None else []


def _bank(ctx: state.Context, study: ReviewStudy):
    path = find_bank(ctx.config.banks_root, study.bank_name)
    if path is None:
        return None, None
    return state.open_bank(path), path


def _no_reference_reason(ctx: state.Context, study: ReviewStudy) -> str:
    if study.bank_name is None:
        return "zero-shot result: no normal reference"
    return f"bank '{study.bank_name}' not under the banks folder"


def _score_again(study: ReviewStudy) -> None:
    st.session_state[state.UNSCORED] = (study.study_key, study.volume, study.output_dir, None)
