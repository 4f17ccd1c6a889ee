"""Opening a study: from the data roots, from an upload, or from the worklist (then the viewer)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.review.discovery import Candidate, Discovery, discover, load_candidate
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.studies import dashboard_output_dir, load_source, locate_source, study_key_of
from adaptclip_med.review.study_data import from_output_dir
from adaptclip_med.review.uploads import save_uploads
from adaptclip_med.outputs.layout import STUDY_JSON

from review_ui import state, viewer_state


def render_open_panel(ctx: state.Context) -> None:
    st.subheader("Open a study")
    roots_tab, upload_tab = st.tabs(["From the data roots", "Upload"])
    with roots_tab:
        if st.button("Scan data roots", key="scan_roots", icon=":material/folder_open:"):
            state.discovery(ctx, refresh=True)
        found: Discovery | None = st.session_state.get(state.DISCOVERY)
        if found is None:
            st.caption(f"{len(ctx.config.data_roots)} data root(s) configured; scan them to list image series.")
        elif not found.candidates:
            st.warning("No readable image series under the data roots.")
        else:
            _candidate_picker(found, "open_pick", "open_candidate")
        if found is not None and found.truncated:
            st.caption("The scan stopped at its file limit; narrow the data roots to see everything.")
    with upload_tab:
        _upload_panel(ctx)


def _candidate_picker(found: Discovery, pick_key: str, button_key: str) -> None:
    labels = {c.key: c.label + (f" - {c.patient_name}" if c.patient_name else "") for c in found.candidates}
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    pick = left.selectbox("Series", list(labels), format_func=labels.get, key=pick_key)
    right.button("Open", key=button_key, on_click=state.request_open, args=("candidate", pick), width="stretch")
    if found.unusable_files:
        st.caption(f"{found.unusable_files} file(s) were not usable image data (non-image objects, localizers, "
                   "unreadable or truncated files).")


def _upload_panel(ctx: state.Context) -> None:
    limit = ctx.config.max_upload_mb
    st.caption(f"DICOM files (or a .zip of a DICOM folder) or one NIfTI file, at most {limit} MB in total. Uploads are "
               "kept in a private temporary folder for this browser session only.")
    files = st.file_uploader("Study files", accept_multiple_files=True, key="upload", max_upload_size=limit)
    if files and st.button("Open upload", key="open_upload", type="primary"):
        folder = save_uploads([(f.name, f.getvalue()) for f in files], state.upload_folder(), limit)
        found = discover(AllowedRoots([folder]), ctx.config.show_patient_names, ctx.config.scoring.axis)
        if not found.candidates:
            raise InputError(f"upload: no readable image series in {len(files)} file(s) "
                             f"({found.unusable_files} unusable)")
        previous: Discovery | None = st.session_state.get(state.DISCOVERY)
        others = previous.candidates if previous else []
        st.session_state[state.DISCOVERY] = Discovery(found.candidates + others,
                                                      (previous.unusable_files if previous else 0),
                                                      previous.truncated if previous else False)
        if len(found.candidates) == 1:
            state.request_open("candidate", found.candidates[0].key)
            st.rerun()
        st.success(f"{len(found.candidates)} series uploaded: pick one under 'From the data roots'.")


def resolve_pending(ctx: state.Context) -> None:
    """Turn an open request into the study on screen (or an unscored study awaiting scoring)."""
    request = st.session_state.pop(state.PENDING_OPEN, None)
    if request is None:
        return
    st.session_state.pop(state.UNSCORED, None)
    st.session_state.pop(state.STUDY, None)
    with st.spinner("Opening the study..."):
        if request["kind"] == "worklist":
            _open_worklist_study(ctx, request["key"])
        else:
            _open_candidate(ctx, request["key"])


def _open_worklist_study(ctx: state.Context, study_key: str) -> None:
    from review_ui.worklist_page import worklist_entries

    entry = next((e for e in worklist_entries(ctx) if e.study_key == study_key), None)
    if entry is None or entry.output_dir is None:
        raise InputError(f"study {study_key}: no finished results in the worklist folders")
    recorded = ctx.store.study_location(study_key)
    candidates = st.session_state[state.DISCOVERY].candidates if state.DISCOVERY in st.session_state else []
    location = locate_source(study_key, recorded, candidates)
    if location.source is None and not candidates and ctx.config.data_roots:
        location = locate_source(study_key, recorded, state.discovery(ctx).candidates)
    volume = None
    if location.source is not None:
        try:
            volume = load_source(location, ctx.data_roots, _axis(ctx))
        except AdaptClipError as exc:
            st.warning(f"Source images could not be read ({exc}); showing the anomaly map without them.")
    study = from_output_dir(study_key, entry.output_dir, volume)
    _show(ctx, study)


def _open_candidate(ctx: state.Context, key: str) -> None:
    found: Discovery = state.discovery(ctx)
    candidate = next((c for c in found.candidates if c.key == key), None)
    if candidate is None:
        raise InputError("the selected series is no longer available; scan the data roots again")
    volume = load_candidate(candidate, _axis(ctx))
    study_key = study_key_of(volume, candidate)
    out_dir = dashboard_output_dir(ctx.config.output, study_key)
    origin = "upload" if _is_upload(candidate) else "dashboard"
    ctx.store.register_study(study_key, origin, replace(candidate.source(), output_dir=out_dir))
    if (out_dir / STUDY_JSON).is_file():
        _show(ctx, from_output_dir(study_key, out_dir, volume))
    else:
        st.session_state[state.UNSCORED] = (study_key, volume, out_dir)


def _show(ctx: state.Context, study) -> None:
    st.session_state[state.STUDY] = study
    review = ctx.store.review(study.study_key)
    viewer_state.reset_for(study, review, stretch=ctx.config.demo)


def _axis(ctx: state.Context) -> str:
    return ctx.config.scoring.axis


def _is_upload(candidate: Candidate) -> bool:
    uploads = st.session_state.get(state.UPLOADS)
    return uploads is not None and Path(candidate.paths[0]).resolve().is_relative_to(Path(uploads.name).resolve())
