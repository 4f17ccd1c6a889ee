"""Scoring on demand: an opened study without results is scored here (method, bank), with a progress bar."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from adaptclip_med.review import guarded
from adaptclip_med.review.access import MANAGE
from adaptclip_med.review.background import BackgroundTask, BarState
from adaptclip_med.review.rendering import grey_rgb, percentile_window
from adaptclip_med.review.studies import DEFAULT_METHOD, dashboard_output_dir, score_for_review
from adaptclip_med.volume.pipeline import make_scorer
from adaptclip_med.volume.bank.folders import list_banks

from adaptclip_med.dashboard import state, viewer_state
from adaptclip_med.dashboard.plain import md_text
from adaptclip_med.dashboard.progress import run_with_progress

ZERO_SHOT = "(zero-shot: no normal references)"


def methods() -> list[str]:
    """Registered scoring methods; only the default when the registry (or a method) cannot be imported."""
    try:
        from adaptclip_med.methods.registry import available_methods

        names = [str(n) for n in available_methods()]
    except Exception:  # a method's optional dependency missing must not break the page
        names = []
    return names if DEFAULT_METHOD in names else [DEFAULT_METHOD, *names]


def scoring_heading(out_dir) -> str:
    """What the scoring panel says about the study: "not scored yet" only when it is not ("Score
    with..." opens this panel for a scored, perhaps signed, study too)."""
    from pathlib import Path

    from adaptclip_med.outputs.layout import STUDY_JSON
    from adaptclip_med.review.studies import method_of

    report_file = Path(out_dir) / STUDY_JSON if out_dir is not None else None
    if report_file is None or not report_file.is_file():
        return "not scored yet"
    try:
        import json

        method = method_of(json.loads(report_file.read_text()))
    except (OSError, ValueError):
        method = "a method"
    return f"scored with {method}; score it again with another method or bank"


def render(ctx: state.Context, loaded, model_problem: str | None) -> None:
    study_key, volume, out_dir, candidate = st.session_state[state.UNSCORED]
    description = f" '{md_text(candidate.description)}'" if candidate is not None and candidate.description else ""
    st.subheader(f"Study {study_key}{description}: {scoring_heading(out_dir)}")
    middle = volume.array[volume.array.shape[0] // 2]
    left, right = st.columns([1, 2])
    left.image(grey_rgb((percentile_window(volume.array).apply(middle) * 255).astype(np.uint8), 256),
               caption=f"{volume.modality}, {volume.array.shape[0]} slices (middle slice)")
    with right:
        if loaded is None:
            st.warning(f"Cannot score: {model_problem}")
            return
        names = methods()
        if len(names) > 1:
            configured_method = ctx.config.scoring.model.method
            st.selectbox("Method", names, key="score_method", index=names.index(configured_method) if configured_method in names else 0,
                         help="Registered anomaly-detection methods; results of "
                         "several methods for one study are kept side by side and can be switched in the viewer.")
        banks = {b["name"]: b["path"] for b in list_banks(ctx.config.banks_root)} if ctx.config.banks_root.is_dir() else {}
        choices = [*banks, ZERO_SHOT]
        configured = next((name for name, path in banks.items() if path == ctx.config.scoring.references.bank), None)
        st.selectbox("Normal references", choices, key="score_bank",
                     index=choices.index(configured) if configured else 0,
                     help="Few-shot scoring compares every slice with matched slices of normal scans; build banks on "
                          "the Reference library page.")
        if not ctx.who.may(MANAGE):
            st.caption(f"Read only: {md_text(ctx.who.display)} has no role to start scoring.")
        if st.button("Score now", key="score_now", type="primary", icon=":material/play_arrow:", shortcut="Ctrl+Enter",
                     disabled=not ctx.who.may(MANAGE)):
            method = st.session_state.get("score_method", ctx.config.scoring.model.method)
            _score(ctx, loaded, study_key, volume, out_dir, banks.get(st.session_state["score_bank"]), method, candidate)


def _score(ctx: state.Context, loaded, study_key: str, volume, out_dir, bank_path: str | None, method: str,
           candidate) -> None:
    # A bank fixes the window it was built with; the configured window applies to zero-shot scoring only.
    options = (ctx.config.scoring.with_references(bank=bank_path, zero_shot=bank_path is None)
               .with_slicing(window=None if bank_path else ctx.config.scoring.slicing.window))
    if method != options.model.method:
        # Another method: the configured backbone, none of the configured method's weights (its
        # adapters do not fit another method); a method that cannot be built here says why.
        options = options.with_model(method=method, weights=None, class_name=None)
        out_dir = dashboard_output_dir(ctx.config.output, study_key, method)
        loaded, problem = state.model(replace(ctx.config, model_configured=True, scoring=options.with_references(bank=None)))
        if loaded is None:
            st.error(f"{method}: {problem}")
            return
    scorer = make_scorer(options, loaded)
    marker = f"scoring {volume.source_label}"
    info = {"method": method}
    if candidate is not None:
        info.update(description=candidate.description, study_date=candidate.study_date)

    def describe(bars: list[BarState]) -> tuple[float, str]:
        if not bars:
            return 0.0, "preparing slices..."
        bar = bars[0]
        return bar.fraction, f"scoring slices: batch {bar.done} of {bar.total}"

    # the permission is checked before the work starts (BackgroundTask starts at once)
    study = guarded.score_study(ctx.who, ctx.store, study_key, lambda: run_with_progress(
        BackgroundTask(lambda: score_for_review(volume, study_key, out_dir, scorer, info), (marker,)), describe))
    guarded.record_scored(ctx.who, ctx.store, study_key,
                          {"score": study.score, "bank": study.bank_name, "shots": scorer.shots, "method": method})
    st.session_state.pop(state.UNSCORED, None)
    st.session_state[state.STUDY] = study
    viewer_state.reset_for(study, ctx.store.review(study_key), stretch=ctx.config.demo)
    state.set_url(study=study_key)
    st.rerun()
