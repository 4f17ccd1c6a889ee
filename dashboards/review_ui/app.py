"""Page frame: configuration check, sidebar (navigation, reviewer, model status), page dispatch."""

from __future__ import annotations

import streamlit as st

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.volume.pipeline import NOT_FOR_CLINICAL_USE

from review_ui import library_page, state, viewer_page, worklist_page


def main() -> None:
    st.set_page_config(page_title="adaptclip-med review", page_icon=":material/radiology:", layout="wide")
    try:
        ctx = state.context()
    except AdaptClipError as exc:
        st.error(str(exc))
        return
    state.keep_widget_state()
    state.apply_navigation()
    loaded, model_problem = state.model(ctx.config)
    with st.sidebar:
        st.title("adaptclip-med review")
        st.radio("Page", state.PAGES, key=state.NAV)
        st.text_input("Reviewer", key=state.REVIEWER, placeholder="your name (saved with sign-offs)")
        if loaded is not None:
            st.success(f"Model ready: {loaded.describe()}",
                       icon=":material/memory:")
        else:
            st.warning(model_problem, icon=":material/warning:")
        if ctx.config.demo:
            st.info("DEMO: tiny random-initialised backbone, synthetic phantoms. Results have no diagnostic value.")
        st.caption(NOT_FOR_CLINICAL_USE)
    page = st.session_state.get(state.NAV, state.PAGES[0])
    try:
        if page == "Worklist":
            worklist_page.render(ctx)
        elif page == "Viewer":
            viewer_page.render(ctx, loaded, model_problem)
        else:
            library_page.render(ctx, loaded, model_problem)
    except AdaptClipError as exc:
        st.error(str(exc), icon=":material/error:")
