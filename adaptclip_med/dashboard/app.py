"""Page frame: configuration check, login gate, top bar (navigation, who is signed in), sidebar
(model status), page dispatch."""

from __future__ import annotations

import streamlit as st

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.outputs.study_writers import NOT_FOR_CLINICAL_USE

from adaptclip_med.dashboard import auth, library_page, state, viewer_page, worklist_page

#: The favicon: an emoji is drawn by the browser itself; a ``:material/...:`` page icon would make
#: every page load fetch an SVG from Google's font server (no request may leave the machine).
PAGE_ICON = "🩻"

#: A reading room wastes no pixels: tighter page padding and gaps than Streamlit's defaults.
COMPACT_CSS = """
<style>
  .block-container { padding-top: 0.6rem; padding-bottom: 0.5rem; padding-left: 1.2rem; padding-right: 1.2rem; max-width: 100%; }
  [data-testid="stHeader"] { height: 0; min-height: 0; }
  [data-testid="stVerticalBlock"] { gap: 0.45rem; }
  [data-testid="stAppDeployButton"], [data-testid="stToolbar"] { display: none; }
  iframe[title*="adaptclip_med_viewer"] { display: block; }
</style>
"""


def main() -> None:
    st.set_page_config(page_title="adaptclip-med review", page_icon=PAGE_ICON, layout="wide",
                       initial_sidebar_state="collapsed")
    st.html(COMPACT_CSS)
    try:
        config = state.load()
    except AdaptClipError as exc:
        st.error(str(exc))
        return
    who = auth.gate(config)  # stops the run when nobody is logged in or the Host is wrong
    state.sweep_uploads(config.upload_ttl_minutes)
    try:
        ctx = state.context(config, who)
    except AdaptClipError as exc:
        st.error(str(exc))
        return
    state.keep_widget_state()
    state.restore_from_url()
    state.open_demo_study(ctx)
    state.apply_navigation()
    loaded, model_problem = state.model(ctx.config)
    with st.sidebar:
        st.title("adaptclip-med review")
        if loaded is not None:
            st.success(f"Model ready: {loaded.describe()}",
                       icon=":material/memory:")
        else:
            st.warning(model_problem, icon=":material/warning:")
        st.caption(NOT_FOR_CLINICAL_USE)
    top = st.columns([5, 4, 1], vertical_alignment="center")
    top[0].radio("Page", state.PAGES, key=state.NAV, horizontal=True, label_visibility="collapsed",
                 on_change=_page_changed)
    status = "model ready" if loaded is not None else "no model: review only"
    demo = " · DEMO: demo model trained on synthetic data, synthetic phantoms, no diagnostic value" if ctx.config.demo else ""
    with top[1]:
        if who.mode == "local":
            st.badge("local, unauthenticated", icon=":material/lock_open:", color="orange")
        st.text(f"signed in: {auth.top_bar_label(who)} · {status}{demo} · research use only")
    with top[2]:
        auth.log_out_button(who)
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


def _page_changed() -> None:
    state.set_url(page=st.session_state.get(state.NAV))
