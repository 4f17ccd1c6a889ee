"""The demo lesion study scored for review, as ``adaptclip-med dashboard --demo`` shows it: set
up the same way by the dashboard's browser test and the browser-viewer benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ScoredDemo:
    """The demo lesion study scored for review, as ``dashboard --demo`` would show it."""

    data: Any  # demo.phantom DemoPaths
    candidate: Any  # review.discovery Candidate of the lesion series
    key: str
    out_dir: Path
    options: Any  # ScoringOptions of the demo model
    bank: Path


def prepare_scored_demo(output: Path, **dataset: Any) -> ScoredDemo:
    """Demo data under ``output`` (``dataset``: make_demo_dataset's size options), the demo bank
    (the one demo-bank builder) and the lesion study scored into the dashboard's output folder.
    Shared by the browser test (tests/dashboard/test_browser.py) and benchmarks/browser_viewer.py."""
    from adaptclip_med.demo.reading_room import DEMO_DATA
    from adaptclip_med.demo.bank import ensure_demo_bank
    from adaptclip_med.demo.phantom import make_demo_dataset
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.review.discovery import discover
    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.review.studies import dashboard_output_dir, score_for_review, study_key_of
    from adaptclip_med.volume.pipeline import make_scorer, model_for

    data = make_demo_dataset(output / DEMO_DATA, seed=0, **dataset)
    options = demo_options()
    bank = ensure_demo_bank(data.reference_dirs, model_for(options), options.preprocessing(), output / "banks")
    candidate = next(c for c in discover(AllowedRoots([output / DEMO_DATA])).candidates if "LESIONS" in c.description)
    volume, _ = load_study(data.study_dir)
    key = study_key_of(volume, candidate)
    out_dir = dashboard_output_dir(output, key)
    scorer = make_scorer(options.with_references(bank=str(bank)).with_slicing(window=None))
    score_for_review(volume, key, out_dir, scorer, {"description": candidate.description, "study_date": candidate.study_date})
    return ScoredDemo(data, candidate, key, out_dir, options, bank)
