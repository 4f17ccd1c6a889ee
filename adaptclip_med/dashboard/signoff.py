"""Sign-off panel: decision (hotkeys 1/2/3), notes, per-finding notes, threshold override, sign
(Ctrl+Enter), next unread (U); exports of the CURRENT revision; audit trail.

The revision the reader was looking at is sent with the sign-off, so a concurrent sign-off by
someone else is refused with a message instead of being overwritten.  The refused reader's own
decision, notes and finding notes stay in the form, with the other decision shown beside them:
a further click stores only what this reader chose.  The reviewer is the logged-in person
(``ctx.who``); the review store refuses a sign-off by someone without the sign-off role.  Exported files are named
by the pseudonymous study key and the revision, and are regenerated when the revision changes.
"""

from __future__ import annotations

import streamlit as st

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.outputs.findings import find_findings
from adaptclip_med.review import guarded
from adaptclip_med.review.access import SIGN_OFF, AccessDenied
from adaptclip_med.review.export import ExportResult, export_review
from adaptclip_med.review.measurements import MeasurementError, measure
from adaptclip_med.review.viewer_data import canonical_affine
from adaptclip_med.review.references import find_bank
from adaptclip_med.review.store import ACCEPTED, DECISIONS, REJECTED, FindingNote, Review, StaleRevisionError
from adaptclip_med.review.study_context import may_see_context
from adaptclip_med.review.study_data import ReviewStudy

from adaptclip_med.dashboard import state, viewer_state
from adaptclip_med.dashboard.plain import md_text

DOWNLOADS = {"report_html": ("HTML report", "text/html"), "report_pdf": ("PDF report", "application/pdf"),
             "mask_nifti": ("Mask (NIfTI)", "application/gzip"), "dicom_seg": ("Mask (DICOM SEG)", "application/dicom"),
             "reviewed_sr": ("Decision (DICOM SR)", "application/dicom")}
HOTKEYS = {"confirmed": "1", "false_positive": "2", "normal": "3"}
SHORT = {"confirmed": "Confirmed", "false_positive": "False pos.", "normal": "Normal"}
EXPORTED = "exported"  # session: study key -> ExportResult of the current revision
SEEN = "seen_revision"  # session: study key -> revision shown when the reader started
CONFLICT = "signoff_conflict"  # session: study key -> (message, the other reviewer's Review)


#: How the accept / reject choice of a finding reads on screen.
VERDICT_LABELS = {ACCEPTED: "accept", REJECTED: "reject"}

def render(ctx: state.Context, study: ReviewStudy) -> None:
    key = study.study_key
    review = ctx.store.review(key)
    if st.session_state.pop("no_unread", False):
        st.info("No other unread study with results in the worklist.")
    seen: dict[str, int] = st.session_state.setdefault(SEEN, {})
    seen.setdefault(key, review.revision if review else 0)
    threshold = float(st.session_state[state.THRESHOLD])
    findings = find_findings(study.probability, threshold, study.spacing)
    if review is not None:
        override = "" if review.threshold_override is None else f", threshold {review.threshold_override:.3f}"
        when = review.reviewed_at.replace("T", " ").replace("+00:00", " UTC")
        st.success(f"Signed off: **{review.decision_label}** by {md_text(review.reviewer)} at {when} "
                   f"(revision {review.revision}{override})", icon=":material/task_alt:")
    # The form's values live in the session only (initialised once from the stored review): a newer
    # review by someone else never replaces what this reader has chosen or typed.
    st.session_state.setdefault(f"so_decision_{key}", review.decision if review else None)
    st.session_state.setdefault(f"so_notes_{key}", review.notes if review else "")
    st.session_state.setdefault(f"so_override_{key}", review is not None and review.threshold_override is not None)
    decision = st.session_state[f"so_decision_{key}"]
    _conflict(key, decision)
    allowed = ctx.who.may(SIGN_OFF)
    columns = st.columns(3, gap="small")
    for column, code in zip(columns, DECISIONS):
        column.button(f"{SHORT[code]}", key=f"decide_{code}", type="primary" if decision == code else "secondary",
                      on_click=_decide, args=(key, code), shortcut=HOTKEYS[code], width="stretch",
                      help=f"{DECISIONS[code]} (key {HOTKEYS[code]})", disabled=not allowed)
    st.text_area("Notes", key=f"so_notes_{key}", height=68, disabled=not allowed,
                 placeholder="notes (saved with the decision)", label_visibility="collapsed")
    earlier = {(n.finding_id, n.description): n for n in review.findings} if review else {}
    with st.expander(f"Findings at pixel threshold {threshold:.4f}: {len(findings)}", expanded=False):  # open on demand: the sign-off stays above the fold
        if not findings:
            st.caption(f"No region reaches the pixel threshold {threshold:.4f}.")
        for finding in findings:
            _finding_row(key, finding, study, earlier, allowed)
    st.checkbox(f"Save threshold {threshold:.3f} with the decision (model: {study.threshold:.3f})",
                key=f"so_override_{key}", disabled=not allowed)
    if not allowed:
        st.caption(f"Read only: {md_text(ctx.who.display)} has no sign-off role.")
    if st.button("Sign off" if review is None else "Amend", key="sign", type="primary", icon=":material/draw:",
                 shortcut="Ctrl+Enter", width="stretch", help="Sign off (Ctrl+Enter)", disabled=not allowed):
        _submit(ctx, study, findings, threshold)
    _exports(ctx, study, ctx.store.review(key))
    next_col, audit_col = st.columns([1, 1], vertical_alignment="center")
    next_col.button("Next unread", key="next_unread", icon=":material/skip_next:", shortcut="U", on_click=_next_unread,
                    args=(ctx, key), width="stretch", help="Open the highest-ranked unread study (key U)")
    with audit_col.popover("Audit trail", width="stretch"):
        _audit(ctx, key)


def _finding_row(key: str, finding, study: ReviewStudy, earlier: dict, allowed: bool) -> None:
    """One finding: a button that jumps the viewer to its peak slice, accept / reject, a note."""
    text = finding.describe(study.instances)
    before = earlier.get((finding.finding_id, text))
    note_field, verdict_field = f"so_finding_{key}_{finding.finding_id}", f"so_verdict_{key}_{finding.finding_id}"
    st.session_state.setdefault(note_field, before.note if before else "")
    st.session_state.setdefault(verdict_field, VERDICT_LABELS[before.verdict if before else ACCEPTED])
    jump_col, verdict_col = st.columns([3, 2], vertical_alignment="center")
    jump_col.button(text, key=f"so_goto_{key}_{finding.finding_id}", on_click=viewer_state.request_jump,
                    args=(finding.peak_slice,), width="stretch", type="tertiary", icon=":material/my_location:",
                    help=f"Show the peak slice of finding #{finding.finding_id} in the viewer")
    verdict_col.radio(f"finding {finding.finding_id}", list(VERDICT_LABELS.values()), key=verdict_field, horizontal=True,
                      label_visibility="collapsed", disabled=not allowed)
    st.text_input(f"note on finding {finding.finding_id}", key=note_field, placeholder=f"note on finding #{finding.finding_id}",
                  disabled=not allowed, label_visibility="collapsed")


def _decide(study_key: str, code: str) -> None:
    st.session_state[f"so_decision_{study_key}"] = code


def _conflict(key: str, mine: str | None) -> None:
    """After a refused sign-off: the other reviewer's decision beside this reader's own (unsaved) one."""
    conflict = st.session_state.get(CONFLICT, {}).get(key)
    if not conflict:
        return
    message, other = conflict
    st.error(md_text(message, 400), icon=":material/sync_problem:")
    if other is None:
        return
    theirs, yours = st.columns(2, gap="small")
    with theirs.container(border=True):
        st.caption(f"Stored (revision {other.revision}), by {md_text(other.reviewer)}")
        st.text(f"{other.decision_label}\n{other.notes}".strip())
    with yours.container(border=True):
        st.caption("Yours (not saved)")
        st.text(f"{DECISIONS.get(mine, 'no decision')}\n{st.session_state.get(f'so_notes_{key}', '')}".strip())


def _submit(ctx: state.Context, study: ReviewStudy, findings, threshold: float) -> None:
    key = study.study_key
    decision = st.session_state.get(f"so_decision_{key}")
    if decision is None:
        st.error("Choose a decision (1, 2 or 3) before signing off.")
        return
    verdicts = {label: code for code, label in VERDICT_LABELS.items()}
    notes = [FindingNote(f.finding_id, f.describe(study.instances), st.session_state.get(f"so_finding_{key}_{f.finding_id}", ""),
                         verdicts.get(st.session_state.get(f"so_verdict_{key}_{f.finding_id}"), ACCEPTED))
             for f in findings]
    override = threshold if st.session_state.get(f"so_override_{key}") else None
    seen: dict[str, int] = st.session_state.setdefault(SEEN, {})
    try:
        measurements = kept_measurements(study, viewer_state.current_measurements())
    except MeasurementError as exc:
        st.error(f"Measurements not saved: {md_text(str(exc), 300)}; clear them in the viewer and sign off again.")
        return
    try:
        review = ctx.store.sign_off(key, decision, ctx.who, st.session_state.get(f"so_notes_{key}", ""), notes, override,
                                    expected_revision=seen.get(key, 0), measurements=measurements)
    except StaleRevisionError as exc:
        other = ctx.store.review(key)
        # The form keeps this reader's decision and notes; the next click amends the newer revision
        # with them (only after the other decision was shown beside them).
        seen[key] = other.revision if other else 0
        st.session_state.setdefault(CONFLICT, {})[key] = (str(exc), other)
        st.rerun()
    except AccessDenied as exc:
        st.error(md_text(str(exc), 400), icon=":material/block:")
        return
    seen[key] = review.revision
    st.session_state.get(CONFLICT, {}).pop(key, None)
    previous: ExportResult | None = st.session_state.get(EXPORTED, {}).get(key)
    if previous is not None and previous.revision != review.revision:
        _export(ctx, study, review)  # the downloads follow the new revision
    st.rerun()


def kept_measurements(study: ReviewStudy, reported: list) -> list[dict]:
    """The viewer's measurements recomputed on the source volume (its units: HU for CT), to be
    kept with the sign-off; none without source images (a mean over a black background is not one)."""
    if not reported or study.volume is None:
        return []
    return [m.as_dict() for m in measure(study.volume.array, canonical_affine(study), reported)]


def _exports(ctx: state.Context, study: ReviewStudy, review: Review | None) -> None:
    if review is None:
        st.caption("Export: sign off first (the export uses the signed-off threshold).")
        return
    result: ExportResult | None = st.session_state.get(EXPORTED, {}).get(study.study_key)
    if result is not None and result.revision != review.revision:
        result = None  # stale: never serve an older revision's files
    if result is None:
        if st.button(f"Export revision {review.revision}", key="export", icon=":material/download:", width="stretch"):
            result = _export(ctx, study, review)
        else:
            return
    st.caption(f"Revision {result.revision} exported to reviewed/{study.study_key}/" +
               ("".join(f"  \n{md_text(note)}" for note in result.notes)))
    _send_to_pacs(ctx, study, result)
    columns = st.columns(2, gap="small")
    for index, (name, path) in enumerate(result.files.items()):
        label, mime = DOWNLOADS.get(name, (path.name, "application/octet-stream"))
        columns[index % 2].download_button(label, path.read_bytes(), file_name=path.name, mime=mime,
                                           key=f"dl_{name}_r{result.revision}", width="stretch")


def _export(ctx: state.Context, study: ReviewStudy, review: Review) -> ExportResult:
    bank_path = find_bank(ctx.config.banks_root, study.bank_name)
    bank = state.open_bank(bank_path) if bank_path is not None else None
    with st.spinner("Writing the reviewed mask and the report..."):
        result = export_review(study, review, ctx.config.output, viewer_state.current_window(), bank,
                               with_context=may_see_context(ctx.who, ctx.config.show_patient_names))
    ctx.store.record_event(study.study_key, ctx.who, "export",
                           {"files": sorted(p.name for p in result.files.values()), "revision": review.revision})
    st.session_state.setdefault(EXPORTED, {})[study.study_key] = result
    return result


def _send_to_pacs(ctx: state.Context, study: ReviewStudy, result: ExportResult) -> None:
    """Send the reviewed SEG and SR of this revision to the configured PACS (sign-off role)."""
    objects = [result.files[name] for name in ("dicom_seg", "reviewed_sr") if name in result.files]
    if not ctx.config.send_to or not objects:
        return
    if st.button(f"Send revision {result.revision} to the PACS", key=f"pacs_send_r{result.revision}",
                 icon=":material/cloud_upload:", width="stretch", disabled=not ctx.who.may(SIGN_OFF)):
        try:
            accepted = guarded.send_to_pacs(ctx.who, ctx.store, study.study_key, result.revision, objects, ctx.config.send_to)
        except AdaptClipError as exc:
            st.error(md_text(str(exc), 400), icon=":material/cloud_off:")
        else:
            st.success(f"{accepted} object(s) sent to the PACS (recorded in the audit trail).", icon=":material/cloud_done:")


def _next_unread(ctx: state.Context, current: str) -> None:
    entries = [e for e in state.worklist(ctx) if e.status == "unread" and e.study_key != current and e.openable]
    if not entries:
        st.session_state["no_unread"] = True
        return
    state.request_open("worklist", entries[0].study_key)


def _audit(ctx: state.Context, study_key: str) -> None:
    trail = ctx.store.audit_trail(study_key)
    if not trail:
        st.caption("No entries yet.")
        return
    # One entry per line, every field labelled: a table in this narrow popover showed one truncated column.
    st.markdown("\n".join(f"- {md_text(line)}" for line in audit_lines(trail)))


def audit_lines(trail) -> list[str]:
    """Each audit entry as one readable line: when, who, what, the decision change, revision, threshold."""
    lines = []
    for e in trail:
        before, after = (e.before or {}).get("decision", ""), (e.after or {}).get("decision", "")
        change = f"{before or '-'} -> {after or '-'}" if before or after else ""
        override = (e.after or {}).get("threshold_override")
        parts = [str(e.at).replace("T", " ")[:19], e.reviewer + (f" ({e.reviewer_id})" if e.reviewer_id else ""), e.action,
                 change, f"revision {(e.after or {}).get('revision')}" if (e.after or {}).get("revision") else "",
                 f"pixel threshold {float(override):.4f}" if override is not None else ""]
        lines.append(" · ".join(p for p in parts if p))
    return lines
