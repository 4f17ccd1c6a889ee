"""A Streamlit progress bar fed by a :class:`~adaptclip_med.review.background.BackgroundTask`."""

from __future__ import annotations

from typing import Callable, TypeVar

import streamlit as st

from adaptclip_med.review.background import BackgroundTask, BarState

T = TypeVar("T")
POLL_SECONDS = 0.3


def run_with_progress(task: BackgroundTask[T], describe: Callable[[list[BarState]], tuple[float, str]]) -> T:
    """Wait for ``task`` while showing ``describe(live bars)`` -> (fraction, text); return its result."""
    bar = st.progress(0.0, text="starting...")
    while not task.wait(POLL_SECONDS):
        fraction, text = describe(task.bars())
        bar.progress(min(max(fraction, 0.0), 1.0), text=text)
    bar.empty()
    return task.result()
