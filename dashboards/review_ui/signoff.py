"""Sign-off: decision, notes per finding, optional threshold override; exports; audit trail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from adaptclip_med.review.export import export_review
from adaptclip_med.review.findings import find_findings
from adaptclip_med.review.references import find_bank
from adaptclip_med.review.store import DECISIONS, FindingNote, Review
from adaptclip_med.review.study_data import ReviewStudy

from review_ui import state, viewer_state

DOWNLOADS = {"report_html": ("HTML report", "text/html"), "report_pdf": ("PDF report", "application/pdf"),
             "mask_nifti": ("Reviewed mask (NIfTI)", "application/gzip"), "dicom_seg": ("Reviewed mask (DICOM SEG)", "application/dicom")}


def render(ctx: state.Context, study: ReviewStudy) -> None:
    key = study.study_key
    review = ctx.store.review(key)
    threshold = float(st.session_state[state.THRESHOLD])
    findings = find_findings(study.probability, threshold, study.spacing)
    form_col, info_col = st.columns([3, 2])
    with form_col:
        st.subheader("Sign-off")
        if review is not None:
            override = "" if review.threshold_override is None else f", threshold override {review.threshold_override:.3f}"
            when = review.reviewed_at.replace("T", " ").replace("+00:00", " UTC")
            st.success(f"Signed off: **{review.decision_label}** by {review.reviewer} at {when} "
                       f"(revision {review.revision}{override})", icon=":material/task_alt:")
        with st.form(f"signoff_{key}"):
            codes = list(DECISIONS)
            st.radio("Decision", codes, format_func=DECISIONS.get, horizontal=True, key=f"so_decision_{key}",
                     index=codes.index(review.decision) if review else None)
            st.text_area("Notes", value=review.notes if review else "", key=f"so_notes_{key}")
            earlier = {(n.finding_id, n.description): n.note for n in review.findings} if review else {}
            if findings:
                st.markdown(f"**Findings at threshold {threshold:.3f}** (connected regions of the mask)")
            else:
                st.caption(f"No region reaches the threshold {threshold:.3f}.")
            for finding in findings:
                st.text_input(finding.describe(), value=earlier.get((finding.finding_id, finding.describe()), ""),
                              key=f"so_finding_{key}_{finding.finding_id}", placeholder="note on this finding")
            st.checkbox(f"Save the threshold {threshold:.3f} with the decision (override of the model's "
                        f"{study.threshold:.3f})", value=review is not None and review.threshold_override is not None,
                        key=f"so_override_{key}")
            reviewer = st.session_state.get(state.REVIEWER, "").strip()
            st.caption(f"Signing as: {reviewer or '— enter your name in the sidebar —'}")
            submitted = st.form_submit_button("Sign off", type="primary", icon=":material/draw:")
        if submitted:
            _submit(ctx, study, findings, threshold, reviewer)
    with info_col:
        _exports(ctx, study, ctx.store.review(key))
        _audit(ctx, key)


def _submit(ctx: state.Context, study: ReviewStudy, findings, threshold: float, reviewer: str) -> None:
    key = study.study_key
    decision = st.session_state.get(f"so_decision_{key}")
    if decision is None:
        st.error("Choose a decision before signing off.")
        return
    if not reviewer:
        st.error("Enter your name as reviewer in the sidebar before signing off.")
        return
    notes = [FindingNote(f.finding_id, f.describe(), st.session_state.get(f"so_finding_{key}_{f.finding_id}", ""))
             for f in findings]
    override = threshold if st.session_state.get(f"so_override_{key}") else None
    ctx.store.sign_off(key, decision, reviewer, st.session_state.get(f"so_notes_{key}", ""), notes, override)
    st.rerun()


def _exports(ctx: state.Context, study: ReviewStudy, review: Review | None) -> None:
    st.subheader("Export")
    if review is None:
        st.caption("Sign off first: the export uses the signed-off threshold.")
        return
    if st.button("Export reviewed mask and report", key="export", icon=":material/download:"):
        bank_path = find_bank(ctx.config.banks_root, study.bank_name)
        bank = state.open_bank(bank_path) if bank_path is not None else None
        with st.spinner("Writing the reviewed mask and the report..."):
            result = export_review(study, review, ctx.config.output, viewer_state.current_window(), bank)
        ctx.store.record_event(study.study_key, st.session_state.get(state.REVIEWER, ""), "export",
                               {"files": sorted(p.name for p in result.files.values()), "revision": review.revision})
        st.session_state[f"exported_{study.study_key}"] = result
    result = st.session_state.get(f"exported_{study.study_key}")
    if result is None:
        return
    st.caption(f"Written to {result.folder}")
    for note in result.notes:
        st.caption(note)
    for name, path in result.files.items():
        label, mime = DOWNLOADS.get(name, (path.name, "application/octet-stream"))
        st.download_button(label, path.read_bytes(), file_name=path.name, mime=mime, key=f"dl_{name}")


def _audit(ctx: state.Context, study_key: str) -> None:
    trail = ctx.store.audit_trail(study_key)
    with st.expander(f"Audit trail ({len(trail)} entries)"):
        if trail:
            st.dataframe(pd.DataFrame([{"at (UTC)": e.at, "reviewer": e.reviewer, "action": e.action,
                                        "from": (e.before or {}).get("decision", ""),
                                        "to": (e.after or {}).get("decision", ""),
                                        "threshold": (e.after or {}).get("threshold_override")} for e in trail]),
                         hide_index=True, width="stretch")
