"""Opening a study: from the data roots, from an upload, from the worklist or a deep link (then the viewer)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import streamlit as st

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.review.discovery import Candidate, Discovery, discover, load_candidate
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.studies import dashboard_output_dir, load_source, locate_source, study_key_of
from adaptclip_med.review.study_data import ReviewStudy, from_output_dir
from adaptclip_med.review.uploads import UPLOAD_TYPES, save_uploads, screen_uploads
from adaptclip_med.outputs.layout import STUDY_JSON

from adaptclip_med.dashboard import state, viewer_state
from adaptclip_med.dashboard.series_flags import flagged_label, series_warnings
from adaptclip_med.dashboard.plain import md_text

UPLOAD_REPORT = "upload_report"  # session: lines to show after an upload (rejected files, outcome)


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
            _candidate_picker(ctx, found, "open_pick", "open_candidate")
        if found is not None and found.truncated:
            st.caption("The scan stopped at its file limit; narrow the data roots to see everything.")
    with upload_tab:
        _upload_panel(ctx)


def _candidate_picker(ctx: state.Context, found: Discovery, pick_key: str, button_key: str) -> None:
    warnings = series_warnings(ctx, found.candidates, findings=False)  # a series with findings IS a study
    labels = {c.key: flagged_label(c, warnings, c.label + (f" - {c.patient_name}" if c.patient_name else ""))
              for c in found.candidates}
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    pick = left.selectbox("Series", list(labels), format_func=labels.get, key=pick_key)
    right.button("Open", key=button_key, on_click=state.request_open, args=("candidate", pick), width="stretch")
    if pick in warnings:
        st.warning(f"{md_text(warnings[pick])}: scoring it as a study gives no meaningful result.", icon=":material/warning:")
    if found.unusable_files:
        st.caption(f"{found.unusable_files} file(s) were not usable image data (non-image objects, localizers, "
                   "unreadable or truncated files).")


def _upload_panel(ctx: state.Context) -> None:
    limit = ctx.config.max_upload_mb
    st.caption(f"DICOM files (or a .zip of a DICOM folder) or one NIfTI (.nii, .nii.gz), MetaImage (.mha) or NRRD "
               f"(.nrrd) file, at most {limit} MB in "
               "total. Uploads are kept in a private temporary folder for this browser session only.")
    for line in st.session_state.get(UPLOAD_REPORT, []):
        st.error(md_text(line), icon=":material/block:")
    files = st.file_uploader("Study files", accept_multiple_files=True, key="upload", max_upload_size=limit,
                             type=UPLOAD_TYPES)
    if files and st.button("Open upload", key="open_upload", type="primary"):
        _open_upload(ctx, files, limit)


def _open_upload(ctx: state.Context, files, limit: int) -> None:
    """Screen, save, discover and validate an upload; only a readable series joins the series list."""
    accepted, rejected = screen_uploads([(f.name, f.getvalue()) for f in files], limit)
    report = [r.line() for r in rejected]
    st.session_state[UPLOAD_REPORT] = report
    if not accepted:
        report.append("Nothing to open: no file of the upload is a DICOM image or NIfTI volume.")
        st.rerun()
    folder = save_uploads(accepted, state.upload_folder(), limit)
    found = discover(AllowedRoots([folder]), ctx.config.show_patient_names, ctx.config.scoring.slicing.axis)
    readable: list[Candidate] = []
    for candidate in found.candidates:
        try:
            load_candidate(candidate, ctx.config.scoring.slicing.axis)
            readable.append(candidate)
        except AdaptClipError:
            names = ", ".join(_upload_names(candidate, accepted)) or "uploaded series"
            report.append(f"{names}: not readable as an image volume (damaged, truncated or not an image series)")
    if not readable:
        shutil.rmtree(folder, ignore_errors=True)  # nothing of it stays in the series list
        if not report:
            report.append(f"The {len(accepted)} uploaded file(s) hold no readable image series.")
        st.rerun()
    previous: Discovery | None = st.session_state.get(state.DISCOVERY)
    others = previous.candidates if previous else []
    st.session_state[state.DISCOVERY] = Discovery(readable + others, previous.unusable_files if previous else 0,
                                                  previous.truncated if previous else False)
    if len(readable) == 1:
        state.request_open("candidate", readable[0].key)
        st.rerun()
    st.success(f"{len(readable)} series uploaded: pick one under 'From the data roots'.")


def _upload_names(candidate: Candidate, accepted: list[tuple[str, bytes]]) -> list[str]:
    """The browser's names of the files behind a candidate (saved as NNNN_<name>)."""
    names = []
    for path in candidate.paths[:3]:
        leaf = Path(path).name
        names.append(leaf.split("_", 1)[1] if "_" in leaf and leaf[:4].isdigit() else leaf)
    return names


def resolve_pending(ctx: state.Context) -> None:
    """Turn an open request into the study on screen (or an unscored study awaiting scoring)."""
    request = st.session_state.pop(state.PENDING_OPEN, None)
    if request is None:
        return
    st.session_state.pop(state.UNSCORED, None)
    st.session_state.pop(state.STUDY, None)
    st.session_state.pop(UPLOAD_REPORT, None)
    url = request.get("url") or {}
    with st.spinner("Opening the study..."):
        try:
            if request["kind"] == "worklist":
                _open_worklist_study(ctx, request["key"], url)
            else:
                _open_candidate(ctx, request["key"], url)
        except AdaptClipError:
            state.set_url(study=None)
            raise


def _open_worklist_study(ctx: state.Context, study_key: str, url: dict | None = None) -> None:
    entries = state.worklist(ctx)
    entry = next((e for e in entries if e.study_key == study_key), None)
    if entry is not None and not entry.scored:
        candidate = next((c for c in state.discovery(ctx).candidates if c.study_key == study_key), None)
        if candidate is not None:
            _open_candidate(ctx, candidate.key, url)
            return
    if entry is None or entry.output_dir is None:
        raise InputError(f"study {study_key}: no finished results in the worklist folders")
    if entry.problem:
        raise InputError(f"study {study_key}: {entry.problem}")
    volume = _source_volume(ctx, study_key)
    study = from_output_dir(study_key, entry.output_dir, volume)
    _show(ctx, study, url)


def _source_volume(ctx: state.Context, study_key: str):
    recorded = ctx.store.study_location(study_key)
    candidates = st.session_state[state.DISCOVERY].candidates if state.DISCOVERY in st.session_state else []
    location = locate_source(study_key, recorded, candidates)
    if location.source is None and not candidates and ctx.config.data_roots:
        location = locate_source(study_key, recorded, state.discovery(ctx).candidates)
    if location.source is None:
        return None
    try:
        return load_source(location, ctx.data_roots, _axis(ctx))
    except AdaptClipError:
        st.warning("The source images of this study could not be read; showing the anomaly map without them.")
        return None


def open_sibling(ctx: state.Context, study: ReviewStudy, output_dir: Path) -> None:
    """Switch to another method's results of the same study (same images, other map)."""
    other = from_output_dir(study.study_key, output_dir, study.volume)
    st.session_state[state.STUDY] = other


def _open_candidate(ctx: state.Context, key: str, url: dict | None = None) -> None:
    found: Discovery = state.discovery(ctx)
    candidate = next((c for c in found.candidates if c.key == key), None)
    if candidate is None:
        raise InputError("the selected series is no longer available; scan the data roots again")
    volume = load_candidate(candidate, _axis(ctx))
    study_key = study_key_of(volume, candidate)
    uploaded = _is_upload(candidate)
    # An upload's results stay in the session's private folder (gone with it), so they never
    # appear in another session's worklist.
    out_dir = dashboard_output_dir(state.upload_folder() / "results" if uploaded else ctx.config.output, study_key)
    origin = "upload" if uploaded else "dashboard"
    ctx.store.register_study(study_key, origin, replace(candidate.source(), output_dir=out_dir))
    state.set_url(study=study_key)
    if (out_dir / STUDY_JSON).is_file():
        _show(ctx, from_output_dir(study_key, out_dir, volume), url)
    else:
        st.session_state[state.UNSCORED] = (study_key, volume, out_dir, candidate)


def _show(ctx: state.Context, study, url: dict | None = None) -> None:
    st.session_state[state.STUDY] = study
    review = ctx.store.review(study.study_key)
    viewer_state.reset_for(study, review, stretch=ctx.config.demo, url=url)
    state.set_url(study=study.study_key)


def _axis(ctx: state.Context) -> str:
    return ctx.config.scoring.slicing.axis


def _is_upload(candidate: Candidate) -> bool:
    uploads = st.session_state.get(state.UPLOADS)
    return uploads is not None and Path(candidate.paths[0]).resolve().is_relative_to(Path(uploads.name).resolve())
