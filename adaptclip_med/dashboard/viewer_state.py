"""Viewer settings in ``st.session_state`` and in the URL.

The browser viewer owns slice, window, zoom and blending while the reader works; it reports them
back (debounced) and they are kept in ``st.session_state[VIEW]`` and in ``st.query_params``, so a
reload, or a link sent to a colleague, opens the same study on the same slice with the same
window.  The threshold stays a page-level widget: it changes the findings the sign-off lists.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import streamlit as st

from adaptclip_med.review.rendering import Window, preset_windows
from adaptclip_med.review.store import Review
from adaptclip_med.review.study_data import ReviewStudy

from adaptclip_med.dashboard.state import REF_SCAN, STRETCH, THRESHOLD, VIEW, VIEW_NONCE

AUTO_WINDOW = "auto (volume percentiles)"
DEFAULT_ALPHA = 0.45
VIEWS = ("axial", "coronal", "sagittal")
#: URL parameters of the view (besides ``study`` and ``page``; never who is reviewing: that comes from the login).
URL_KEYS = {"slice": "slice", "view": "view", "wl": "wl", "zoom": "zoom"}


def window_options(study: ReviewStudy) -> dict[str, Window]:
    """Presets for the study's modality plus the percentile window (always available)."""
    options = {AUTO_WINDOW: study.auto_window}
    if study.volume is not None:
        options.update(preset_windows(study.volume.modality))
    return options


def reset_for(study: ReviewStudy, review: Review | None, stretch: bool = False, url: dict[str, str] | None = None) -> None:
    """Fresh settings for a newly opened study: first top slice, its saved threshold, a sensible
    window; then whatever the URL says (a reload or a deep link).

    ``stretch`` starts with the heat map stretched to the study maximum: on for the demo, whose
    random model produces faint maps; off otherwise, so a normal study does not look alarming."""
    options = window_options(study)
    scoring_window = ((study.report.get("scoring") or {}).get("preprocessing") or {}).get("window")
    preset = scoring_window if isinstance(scoring_window, str) and scoring_window in options else (
        "brain" if "brain" in options else AUTO_WINDOW)
    override = review.threshold_override if review is not None else None
    view: dict[str, Any] = {"z": int(study.top_slices[0]) if study.top_slices else study.depth // 2, "view": "axial",
                            "level": options[preset].level, "width": options[preset].width, "preset": preset,
                            "zoom": 1.0, "opacity": DEFAULT_ALPHA, "heat": True, "outline": True,
                            "measurements": [{k: m[k] for k in ("kind", "z", "points")} for m in review.measurements]
                            if review is not None else []}
    view.update(from_url(url or {}, study.depth))
    st.session_state.update({
        VIEW: view, VIEW_NONCE: uuid.uuid4().hex,
        THRESHOLD: float(np.clip(study.threshold if override is None else override, 0.0, 1.0)),
        REF_SCAN: 0, STRETCH: stretch,
    })


def from_url(params: dict[str, str], depth: int) -> dict[str, Any]:
    """View settings from URL parameters; malformed values are ignored."""
    found: dict[str, Any] = {}
    try:
        if "slice" in params:
            found["z"] = int(np.clip(int(params["slice"]), 0, depth - 1))
    except ValueError:
        pass
    if params.get("view") in VIEWS:
        found["view"] = params["view"]
    try:
        if "wl" in params:
            level, width = (float(v) for v in str(params["wl"]).split(","))
            if width > 0:
                found.update(level=level, width=width, preset=None)
    except ValueError:
        pass
    try:
        if "zoom" in params:
            found["zoom"] = float(np.clip(float(params["zoom"]), 0.5, 8.0))
    except ValueError:
        pass
    return found


def to_url(view: dict[str, Any]) -> dict[str, str]:
    return {"slice": str(int(view["z"])), "view": str(view["view"]),
            "wl": f"{float(view['level']):g},{float(view['width']):g}", "zoom": f"{float(view['zoom']):g}"}


def adopt(reported: dict[str, Any] | None) -> bool:
    """Take the state the browser reported; True when it changed."""
    if not reported:
        return False
    view = st.session_state.get(VIEW)
    if view is None:
        return False
    mapping = {"slice": "z", "view": "view", "level": "level", "width": "width", "zoom": "zoom", "opacity": "opacity",
               "heat": "heat", "outline": "outline", "preset": "preset", "measurements": "measurements"}
    new = dict(view)
    for source, target in mapping.items():
        if source in reported and reported[source] is not None:
            new[target] = reported[source]
        elif source == "preset" and source in reported:
            new[target] = None
    if new == view:
        return False
    st.session_state[VIEW] = new
    return True


def heat_gain(study: ReviewStudy) -> float:
    """Display gain of the heat map: 1, or 1 / study maximum when stretching is on."""
    peak = study.peak
    return 1.0 / peak if st.session_state.get(STRETCH) and 0.0 < peak < 1.0 else 1.0


def current_window() -> Window:
    view = st.session_state.get(VIEW) or {}
    return Window(float(view.get("level", 40.0)), max(float(view.get("width", 80.0)), 1.0))


def current_measurements() -> list[dict[str, Any]]:
    """The measurements the browser reported for the open study (geometry only; the numbers kept
    are recomputed by ``review.measurements.measure``)."""
    view = st.session_state.get(VIEW) or {}
    return list(view.get("measurements") or [])


def current_slice(depth: int) -> int:
    view = st.session_state.get(VIEW) or {}
    return int(np.clip(int(view.get("z", 0)), 0, max(depth - 1, 0)))


def request_jump(z: int) -> None:
    """Move the browser viewer to slice ``z`` (a finding, a link): a new state nonce makes it adopt
    the session's view."""
    view = st.session_state.get(VIEW)
    if view is not None:
        st.session_state[VIEW] = {**view, "z": int(z)}
        st.session_state[VIEW_NONCE] = uuid.uuid4().hex
