"""Viewer settings in ``st.session_state`` (slice, window, threshold, opacity, zoom) and the
callbacks that change them.

Callbacks run before the script, which is the only moment Streamlit lets code set the value of a
widget (the slice slider) that is also moved by buttons and chart clicks.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from adaptclip_med.review.rendering import Window, preset_windows
from adaptclip_med.review.store import Review
from adaptclip_med.review.study_data import ReviewStudy

from review_ui.state import ALPHA, LEVEL, REF_SCAN, SLICE, STRETCH, THRESHOLD, WIDTH, WINDOW_PRESET, ZOOM, ZOOM_CENTRE

AUTO_WINDOW = "auto (volume percentiles)"
CUSTOM_WINDOW = "custom"
DEFAULT_ALPHA = 0.45


def window_options(study: ReviewStudy) -> dict[str, Window]:
    """Presets for the study's modality plus the percentile window (always available)."""
    options = {AUTO_WINDOW: study.auto_window}
    if study.volume is not None:
        options.update(preset_windows(study.volume.modality))
    return options


def reset_for(study: ReviewStudy, review: Review | None, stretch: bool = False) -> None:
    """Fresh settings for a newly opened study: first top slice, its saved threshold, a sensible window.

    ``stretch`` starts with the heat map stretched to the study maximum: on for the demo, whose
    random model produces faint maps; off otherwise, so a normal study does not look alarming."""
    options = window_options(study)
    scoring_window = ((study.report.get("scoring") or {}).get("preprocessing") or {}).get("window")
    preset = scoring_window if isinstance(scoring_window, str) and scoring_window in options else (
        "brain" if "brain" in options else AUTO_WINDOW)
    override = review.threshold_override if review is not None else None
    st.session_state.update({
        SLICE: int(study.top_slices[0]) if study.top_slices else study.depth // 2,
        WINDOW_PRESET: preset, LEVEL: options[preset].level, WIDTH: options[preset].width,
        THRESHOLD: float(np.clip(study.threshold if override is None else override, 0.0, 1.0)),
        ALPHA: DEFAULT_ALPHA, ZOOM: 1.0, ZOOM_CENTRE: False, REF_SCAN: 0, STRETCH: stretch,
    })


def heat_gain(study: ReviewStudy) -> float:
    """Display gain of the heat map: 1, or 1 / study maximum when stretching is on."""
    peak = study.peak
    return 1.0 / peak if st.session_state.get(STRETCH) and 0.0 < peak < 1.0 else 1.0


def current_window() -> Window:
    return Window(float(st.session_state[LEVEL]), max(float(st.session_state[WIDTH]), 1.0))


def apply_preset(options: dict[str, Window]) -> None:
    name = st.session_state[WINDOW_PRESET]
    if name in options:
        st.session_state[LEVEL], st.session_state[WIDTH] = options[name].level, options[name].width


def mark_custom() -> None:
    st.session_state[WINDOW_PRESET] = CUSTOM_WINDOW


def go_to(index: int, depth: int) -> None:
    st.session_state[SLICE] = int(np.clip(index, 0, depth - 1))


def step(delta: int, depth: int) -> None:
    go_to(int(st.session_state.get(SLICE, 0)) + delta, depth)


def jump_from_chart(chart_key: str, depth: int) -> None:
    """Clicking the score curve selects the nearest slice: show it."""
    event = st.session_state.get(chart_key) or {}
    picked = (event.get("selection") or {}).get("pick") or []
    if picked and "slice" in picked[0]:
        go_to(int(picked[0]["slice"]), depth)
