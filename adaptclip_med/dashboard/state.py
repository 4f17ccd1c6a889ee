"""Per-session state and the one thing shared across sessions: the model.

Patient data (volumes, maps, discovered series, uploads) lives in ``st.session_state`` only, so it
disappears with the browser session and is never visible to another user.  ``st.cache_resource``
is global to the server process, hence used for the model alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.review.config import DashboardConfig, load_config
from adaptclip_med.review.discovery import Discovery, discover, study_keys_in_use
from adaptclip_med.review.access import Identity
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import ReviewStore
from adaptclip_med.review.uploads import new_session_folder, sweep_expired
from adaptclip_med.review.worklist import WorklistEntry, worklist_entries
from adaptclip_med.volume.options import ScoringOptions

# Session-state keys (widgets use the same names as their ``key``).
NAV = "nav"
NAV_REQUEST = "nav_request"  # page to show on the next run
STUDY = "study"  # ReviewStudy on screen
PENDING_OPEN = "pending_open"  # {"kind": "worklist" | "candidate", "key": ...}
UNSCORED = "unscored"  # (study key, volume, output folder, candidate) of an opened study without results
DISCOVERY = "discovery"
UPLOADS = "upload_dir"  # TemporaryDirectory; removed when the session's state is dropped
BANKS = "open_banks"  # bank folder -> ReferenceBank
THRESHOLD, REF_SCAN, STRETCH, MAP_PICK = "threshold", "ref_scan", "heat_stretch", "map_pick"
VIEW = "view_state"  # what the browser viewer reported: slice, view, window, zoom, blending
VIEW_NONCE = "view_nonce"  # changes when the page wants the viewer to adopt VIEW (new study, jump)

PAGES = ("Worklist", "Viewer", "Reference library")
#: Widget values that must survive a visit to another page (Streamlit drops the state of widgets
#: that are not drawn in a run unless it is re-assigned).
PERSISTENT = (THRESHOLD, REF_SCAN, STRETCH, MAP_PICK)


def keep_widget_state() -> None:
    for key in PERSISTENT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


@dataclass(frozen=True)
class Context:
    config: DashboardConfig
    store: ReviewStore
    data_roots: AllowedRoots  # where studies and references are discovered (+ this session's uploads)
    readable: AllowedRoots  # everything the app may read: data roots, result folders, own output
    who: Identity  # the authenticated person of this run (auth.gate); every action is checked against it


def load() -> DashboardConfig:
    """The dashboard configuration (file named by the CLI)."""
    return load_config()


def context(config: DashboardConfig, who: Identity) -> Context:
    store = st.session_state.get("_store")
    if store is None or store.path.parent != config.output:
        store = st.session_state["_store"] = ReviewStore.in_folder(config.output)
    data_roots = AllowedRoots(config.data_roots)
    uploads = st.session_state.get(UPLOADS)
    if uploads is not None and not Path(uploads.name).is_dir():  # expired and swept
        forget_uploads()
        uploads = None
    if uploads is not None:
        data_roots = data_roots.with_root(uploads.name)
    readable = AllowedRoots((*data_roots.roots, *config.results, config.output))
    return Context(config, store, data_roots, readable, who)


def upload_folder() -> Path:
    """This session's private upload folder (mode 0700, deleted when the session's state goes, or
    by :func:`sweep_uploads` after the configured lifetime)."""
    if UPLOADS not in st.session_state:
        st.session_state[UPLOADS] = new_session_folder()
    return Path(st.session_state[UPLOADS].name)


def forget_uploads() -> None:
    """Drop this session's uploads (and what was found in them) from its state."""
    st.session_state.pop(UPLOADS, None)
    st.session_state.pop(DISCOVERY, None)
    study = st.session_state.get(STUDY)
    if study is not None and getattr(study, "output_dir", None) is not None and not Path(study.output_dir).exists():
        st.session_state.pop(STUDY, None)


def sweep_uploads(ttl_minutes: int) -> None:
    """Every run: delete every session's upload folder older than the lifetime (ours included)."""
    sweep_expired(ttl_minutes)


@st.cache_resource(show_spinner="Loading the model (once per server)...", max_entries=2)
def _cached_model(options_json: str):
    from adaptclip_med.volume.pipeline import model_for

    return model_for(ScoringOptions.from_dict(json.loads(options_json)))


def model(config: DashboardConfig) -> tuple[Any | None, str | None]:
    """(loaded model, None) or (None, why there is none) — pages say so instead of failing."""
    if not config.model_configured:
        return None, ("no adapter weights configured (start with --adapters FILE, or --demo): existing results can be "
                      "reviewed and signed off, but scoring and bank building are disabled")
    try:
        return _cached_model(json.dumps(config.scoring.with_references(bank=None).to_dict(), sort_keys=True)), None
    except AdaptClipError as exc:
        return None, f"model weights not available: {exc}"


def discovery(ctx: Context, refresh: bool = False) -> Discovery:
    """Series under the data roots, scanned once per session (or on request)."""
    if refresh or DISCOVERY not in st.session_state:
        with st.spinner("Scanning the data roots for image series..."):
            from adaptclip_med.review.study_context import may_see_context

            names = may_see_context(ctx.who, ctx.config.show_patient_names)  # a logged-in reader sees who it is
            keys = study_keys_in_use(ctx.store, ctx.config.output)  # files keep the key their sign-offs carry
            st.session_state[DISCOVERY] = discover(ctx.data_roots, names, ctx.config.scoring.slicing.axis, keys_in_use=keys)
    return st.session_state[DISCOVERY]


def open_bank(path: Path):
    """A reference bank opened once per session (features stay memory-mapped)."""
    from adaptclip_med.volume.bank.reader import ReferenceBank

    banks = st.session_state.setdefault(BANKS, {})
    if str(path) not in banks:
        banks[str(path)] = ReferenceBank.open(path)
    return banks[str(path)]


def forget_banks() -> None:
    """After a rename/delete the open handles point at stale folders."""
    st.session_state.pop(BANKS, None)


def request_open(kind: str, key: str) -> None:
    """Open a study in the viewer on the next run (usable as a callback and in the script body)."""
    st.session_state[PENDING_OPEN] = {"kind": kind, "key": key}
    st.session_state[NAV_REQUEST] = "Viewer"


# ------------------------------------------------------------------ URL (reload, deep links)
def url_params() -> dict[str, str]:
    return {k: st.query_params.get(k) for k in st.query_params.keys()}


def set_url(**values: str | None) -> None:
    """Update query parameters (None removes one); unchanged values are not rewritten."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != value:
            st.query_params[name] = value


def restore_from_url() -> None:
    """Once per session: page and study from the URL (a reload or a deep link).  Who reviews never
    comes from the URL or a cookie of ours: it comes from the login (:mod:`auth`)."""
    if "_url_restored" in st.session_state:
        return
    st.session_state["_url_restored"] = True
    params = url_params()
    page = params.get("page")
    if page in PAGES:
        st.session_state[NAV_REQUEST] = page
    study = params.get("study")
    if study and PENDING_OPEN not in st.session_state and STUDY not in st.session_state:
        st.session_state[PENDING_OPEN] = {"kind": "worklist", "key": study, "url": params}
        st.session_state[NAV_REQUEST] = "Viewer"


def open_demo_study(ctx: Context) -> None:
    """Once per session, in demo mode without a page or study in the URL: open the top of the
    worklist (the pre-scored lesion study) in the reading room, as the README shows."""
    if not ctx.config.demo or "_demo_opened" in st.session_state:
        return
    st.session_state["_demo_opened"] = True
    params = url_params()
    if params.get("page") or params.get("study") or PENDING_OPEN in st.session_state or STUDY in st.session_state:
        return
    top = next((e for e in worklist(ctx) if e.openable), None)
    if top is not None:
        request_open("worklist", top.study_key)


def apply_navigation() -> None:
    """Switch page as requested; must run before the page radio exists, since Streamlit refuses
    changes to a widget's value once it is drawn."""
    if NAV_REQUEST in st.session_state:
        st.session_state[NAV] = st.session_state.pop(NAV_REQUEST)
        set_url(page=st.session_state[NAV])


def worklist(ctx: Context) -> list[WorklistEntry]:
    """The worklist of this configuration (result folders, own output, studies scored here)."""
    candidates = discovery(ctx).candidates if ctx.config.data_roots or UPLOADS in st.session_state else []
    return worklist_entries(ctx.config.results, ctx.config.output, ctx.store, ctx.readable, candidates)
