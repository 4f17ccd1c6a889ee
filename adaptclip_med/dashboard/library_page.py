"""Reference library: pick normal scans for a protocol, build the bank, manage existing banks."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.intensity import CT_WINDOWS
from adaptclip_med.review.background import BackgroundTask, BarState
from adaptclip_med.review.discovery import Candidate, load_candidate, scan_path
from adaptclip_med.review.rendering import grey_rgb, percentile_window
from adaptclip_med.utils.redact import describe_path
from adaptclip_med.volume.preprocessing import SlicePreprocessing, parse_window
from adaptclip_med.review import guarded
from adaptclip_med.review.access import MANAGE
from adaptclip_med.volume.bank_listing import list_banks
from adaptclip_med.volume.reference_bank import build_reference_bank

from adaptclip_med.dashboard import state
from adaptclip_med.dashboard.plain import md_text
from adaptclip_med.dashboard.progress import run_with_progress
from adaptclip_med.dashboard.series_flags import flagged_label, series_warnings

PERCENTILE = "percentile (per volume)"
THUMBNAILS = "thumbnails"  # session: candidate key -> uint8 image
FLASH = "library_message"  # shown once after a rerun
MAX_THUMBNAILS = 12
DEFAULT_PROTOCOL = "CT head non-contrast"


def bank_name_for(protocol: str) -> str:
    """A folder-safe bank name from a protocol name ("CT head non-contrast" -> "ct-head-non-contrast")."""
    name = re.sub(r"[^a-z0-9]+", "-", protocol.strip().lower()).strip("-")
    if not name:
        raise InputError("name the protocol the references are for (e.g. 'CT head non-contrast')")
    return name


def render(ctx: state.Context, loaded, model_problem: str | None) -> None:
    st.header("Reference library")
    st.caption("Normal scans of one protocol, encoded once into a reference bank; every study of that protocol is then "
               "compared slice by slice with matched normal slices.")
    if FLASH in st.session_state:
        st.success(st.session_state.pop(FLASH), icon=":material/check_circle:")
    _existing_banks(ctx)
    st.divider()
    _build(ctx, loaded, model_problem)


def _existing_banks(ctx: state.Context) -> None:
    root = ctx.config.banks_root
    banks = list_banks(root) if root.is_dir() else []
    st.subheader(f"Banks ({len(banks)})")
    if not banks:
        st.caption("No reference bank yet: build one below.")
        return
    st.dataframe(pd.DataFrame([{"name": b["name"], "scans": b["scans"], "window": str((b["preprocessing"] or {}).get("window") or "percentile"),
                                "calibrated": b["calibrated"], "created": b["created"]} for b in banks]),
                 hide_index=True, width="stretch")
    names = [b["name"] for b in banks]
    if not ctx.who.may(MANAGE):
        st.caption(f"Read only: {md_text(ctx.who.display)} may not build, rename or delete banks.")
        return
    pick_col, rename_col, delete_col = st.columns([2, 2, 1], vertical_alignment="bottom")
    pick = pick_col.selectbox("Bank", names, key="bank_pick")
    with rename_col:
        new_name = st.text_input("New name", key="bank_new_name", placeholder="e.g. ct-head-noncontrast-2025")
        if st.button("Rename", key="bank_rename", disabled=not new_name):
            state.forget_banks()
            guarded.rename_bank(ctx.who, ctx.store, root, pick, new_name.strip())
            st.rerun()
    with delete_col:
        confirm = st.checkbox("Confirm", key="bank_delete_confirm")
        if st.button("Delete", key="bank_delete", disabled=not confirm, type="secondary"):
            state.forget_banks()
            guarded.delete_bank(ctx.who, ctx.store, root, pick)
            st.session_state.pop("bank_delete_confirm", None)
            st.rerun()


def _build(ctx: state.Context, loaded, model_problem: str | None) -> None:
    st.subheader("Build a bank from normal scans")
    if st.button("Scan data roots", key="lib_scan", icon=":material/folder_open:"):
        state.discovery(ctx, refresh=True)
    found = st.session_state.get(state.DISCOVERY)
    if found is None:
        st.caption("Scan the data roots to list candidate series.")
        return
    candidates: list[Candidate] = found.candidates
    if not candidates:
        st.warning("No readable image series under the data roots.")
        return
    modalities = sorted({c.modality or c.kind.upper() for c in candidates})
    modality = st.selectbox("Modality", ["all", *modalities], key="lib_modality")
    shown = [c for c in candidates if modality == "all" or (c.modality or c.kind.upper()) == modality]
    warnings = series_warnings(ctx, shown)
    rows = []
    for c in shown:
        row = {"series": c.key[:8], "modality": c.modality or c.kind.upper(), "description": c.description, "slices": c.num_slices,
               "warning": warnings.get(c.key, "")}
        if ctx.config.show_patient_names:
            row.update(patient=c.patient_name or "", location=c.location)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    labels = {c.key: flagged_label(c, warnings) for c in shown}
    st.multiselect("Normal scans for the bank (k shots)", list(labels), format_func=labels.get, key="ref_pick",
                   help="Only scans without findings belong in a bank; flagged (⚠) series are label maps or have findings.")
    picked = [c for c in shown if c.key in st.session_state.get("ref_pick", [])]
    for c in picked:
        if c.key in warnings:
            st.warning(f"{md_text(c.label)}: {md_text(warnings[c.key])} - not a normal reference.", icon=":material/warning:")
    flagged = flagged_picks(picked, warnings)
    confirmed = not flagged or st.checkbox(
        f"I have looked at the {len(flagged)} flagged series and confirm they are normal", key="ref_confirm_flagged",
        help="A series this app flags (a label map, a possible finding, a confirmed anomaly) would teach the bank "
             "that the abnormality is normal anatomy.")
    if st.toggle("Show thumbnails", key="lib_thumbs"):
        _thumbnails(ctx, picked or shown[:MAX_THUMBNAILS])
    protocol_col, window_col = st.columns(2)
    protocol = protocol_col.text_input("Protocol", value=DEFAULT_PROTOCOL, key="protocol")
    windows = [PERCENTILE, *CT_WINDOWS]
    configured = ctx.config.scoring.slicing.window
    window_col.selectbox("Window used for the network", windows, key="bank_window",
                         index=windows.index(configured) if configured in windows else 0,
                         help="Studies scored with this bank are windowed the same way (CT: a preset; MR: percentile).")
    calibrate = st.checkbox("Calibrate the mask threshold on the references (leave-one-scan-out, needs 2+ scans)",
                            value=True, key="bank_calibrate")
    replace_existing = st.checkbox("Replace a bank with the same name", key="bank_replace")
    if loaded is None:
        st.warning(f"Cannot build banks: {model_problem}")
    if not ctx.who.may(MANAGE):
        st.caption(f"Read only: {md_text(ctx.who.display)} has no role to build reference banks.")
    if st.button("Build reference bank", key="build_bank", type="primary",
                 disabled=loaded is None or not picked or not ctx.who.may(MANAGE) or not confirmed,
                 icon=":material/library_add:"):
        if not confirmed:  # the button is disabled too; a stale click must not build it either
            raise InputError("flagged series were picked for the bank: confirm they are normal first")
        name = bank_name_for(protocol)
        if (ctx.config.banks_root / name / "bank.json").is_file() and not replace_existing:
            raise InputError(f"a bank named '{name}' exists: tick 'Replace' or choose another protocol name")
        _build_bank(ctx, loaded, name, picked, candidates, calibrate and len(picked) >= 2)


def flagged_picks(picked: list[Candidate], warnings: dict[str, str]) -> list[Candidate]:
    """The picked series the app itself flags (label map, possible finding, confirmed anomaly):
    a bank is built from them only after an explicit confirmation."""
    return [c for c in picked if warnings.get(c.key)]


def _build_bank(ctx: state.Context, loaded, name: str, picked: list[Candidate], everything: list[Candidate],
                calibrate: bool) -> None:
    choice = st.session_state["bank_window"]
    preprocessing = SlicePreprocessing(window=parse_window(None if choice == PERCENTILE else choice), axis=ctx.config.scoring.slicing.axis)
    slicing = ctx.config.scoring.slicing
    with tempfile.TemporaryDirectory(prefix="adaptclip-bank-scans-") as staging:  # series sharing a folder
        scans = [scan_path(c, everything, Path(staging)) for c in picked]
        labels = [describe_path(Path(p)) for p in scans]
        # the permission is checked before the work starts (BackgroundTask starts at once)
        path = guarded.build_bank(ctx.who, ctx.store, name, lambda: run_with_progress(
            BackgroundTask(lambda: build_reference_bank(name, scans, loaded, preprocessing, ctx.config.banks_root,
                                                        batch_size=slicing.batch_size, calibrate=calibrate),
                           ("encoding ", "calibrating")),
            lambda bars: _bank_progress(bars, labels, calibrate)))
    state.forget_banks()
    st.session_state[FLASH] = f"Reference bank '{path.name}' built from {len(scans)} scan(s)."
    st.rerun()  # redraw the bank list with the new bank


def _bank_progress(bars: list[BarState], labels: list[str], calibrate: bool) -> tuple[float, str]:
    """Overall progress: one step per scan encoded, plus the calibration."""
    steps = len(labels) + (1 if calibrate else 0)
    for bar in bars:
        if bar.description.startswith("calibrating"):
            return (len(labels) + bar.fraction) / steps, "calibrating the threshold on the normal scans"
        for index, label in enumerate(labels):
            if bar.description == f"encoding {label}":
                return (index + bar.fraction) / steps, f"encoding normal scan {index + 1} of {len(labels)}"
    return 0.0, "reading the scans..."


def _thumbnails(ctx: state.Context, candidates: list[Candidate]) -> None:
    """Middle slice of each candidate, loaded once per session."""
    cache: dict[str, np.ndarray | None] = st.session_state.setdefault(THUMBNAILS, {})
    columns = st.columns(6)
    for index, candidate in enumerate(candidates[:MAX_THUMBNAILS]):
        if candidate.key not in cache:
            try:
                volume = load_candidate(candidate, ctx.config.scoring.slicing.axis)
                middle = volume.array[volume.array.shape[0] // 2]
                cache[candidate.key] = (percentile_window(volume.array).apply(middle) * 255).astype(np.uint8)
            except AdaptClipError:
                cache[candidate.key] = None
        image = cache[candidate.key]
        with columns[index % len(columns)]:
            if image is None:
                st.caption(f"{candidate.key[:8]}: unreadable")
            else:
                st.image(grey_rgb(image, 160), caption=md_text(candidate.label))
