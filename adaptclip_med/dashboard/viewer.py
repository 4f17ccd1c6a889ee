"""The browser viewer component: NiiVue in an iframe, declared from the shipped ``frontend/`` folder.

``frontend/`` holds ``index.html``, ``viewer.js`` and NiiVue's UMD bundle (``niivue.umd.js`` from
the npm package ``@niivue/niivue``, BSD-2-Clause), installed as package data, so the dashboard
needs no network and no Node.js.  The payload (volumes, geometry) is built once per study and
threshold and kept in the session; Streamlit sends identical large messages only once (its
message cache), so reruns do not resend the volumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

from adaptclip_med.review import viewer_data
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.reference_source import open_reference_series
from adaptclip_med.review.study_data import ReviewStudy

FRONTEND = Path(__file__).resolve().parent / "frontend"
_component = components.declare_component("adaptclip_med_viewer", path=str(FRONTEND))

PAYLOADS = "viewer_payloads"  # session: payload id -> study payload
REFERENCES = "viewer_references"  # session: (bank path, scan, study id) -> reference payload
_KEEP = 4


def study_payload(study: ReviewStudy, threshold: float, method: str) -> dict[str, Any]:
    cache: dict[tuple, dict[str, Any]] = st.session_state.setdefault(PAYLOADS, {})
    key = (study.study_key, str(study.output_dir), method, round(float(threshold), 4))
    if key not in cache:
        previous = next((p for k, p in cache.items() if k[:3] == key[:3]), None)
        payload = viewer_data.study_payload(study, threshold, method)
        if previous is not None:  # only the outline changed: keep the same image and map strings
            payload["volumes"]["base"], payload["volumes"]["map"] = previous["volumes"]["base"], previous["volumes"]["map"]
        while len(cache) >= _KEEP:
            cache.pop(next(iter(cache)))
        cache[key] = payload
    return cache[key]


def reference_payload(bank, bank_path: Path, scan: int, study: ReviewStudy, bank_name: str,
                      roots: AllowedRoots) -> dict[str, Any] | None:
    """The matched normal scan for the second viewer: its source series reopened (under ``roots``)
    when the bank recorded it and it is unchanged, else the bank's thumbnails; once per session."""
    cache: dict[tuple, dict[str, Any] | None] = st.session_state.setdefault(REFERENCES, {})
    key = (str(bank_path), scan, study.study_key, str(study.output_dir))
    if key not in cache:
        series = open_reference_series(bank, scan, roots)
        ref = viewer_data.reference_volume(bank, scan, study, bank_name, series)
        while len(cache) >= _KEEP:
            cache.pop(next(iter(cache)))
        cache[key] = None if ref is None else viewer_data.reference_payload(ref, scan, bank_name)
    return cache[key]


def viewer(payload: dict[str, Any], *, reference: dict[str, Any] | None, state: dict[str, Any], state_nonce: str,
           jump: dict[str, Any] | None, presets: dict[str, list[float]], heat_range: tuple[float, float], label: str,
           height: int, key: str, context: list[str] | None = None) -> dict[str, Any] | None:
    """Draw the viewer; returns the last view state the browser reported (slice, view, window, ...).
    ``context``: the patient context lines for the corner text (only for a user allowed to see them)."""
    return _component(**payload, ref=reference, state=state, state_nonce=state_nonce, jump=jump, presets=presets,
                      heat_range=list(heat_range), labels={"study": label}, height=height, context=list(context or []),
                      study_fraction=0.6 if reference else 1.0, key=key, default=None)
