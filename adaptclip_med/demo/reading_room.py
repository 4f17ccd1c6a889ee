"""``dashboard --demo`` opens in the reading room, on the lesion study, already scored.

The README promises the reading room; the demo used to open on a worklist of unscored studies with
the lesion study last and the ground-truth label map offered as one more "study".  So the demo's
data folder holds studies only (the label map lives beside it), and the lesion study is scored
once, few-shot with the demo bank, into the dashboard's own output, where the worklist finds it
first and the app opens it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DEMO_TRUTH_DIR = "demo_truth"
TRUTH_NAME = "ground_truth_labels.nii.gz"
LESION_HINT = "LESIONS"


def truth_outside(output: Path, data_root: Path) -> Path:
    """Where the demo keeps its label map: beside the data folder, never inside it (a label map
    under the data roots is offered as a study to score).  Moves one an older demo left inside."""
    target = Path(output) / DEMO_TRUTH_DIR / TRUTH_NAME
    inside = Path(data_root) / TRUTH_NAME
    if inside.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(inside), str(target))
    return target


def prescore_lesion_study(output: Path, data_root: Path, bank: Path | None, axis: str = "axial") -> str | None:
    """Score the demo's lesion study into the dashboard output (once); returns its study key."""
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.outputs.layout import STUDY_JSON
    from adaptclip_med.review.discovery import discover, load_candidate
    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.review.studies import DEFAULT_METHOD, dashboard_output_dir, score_for_review, study_key_of
    from adaptclip_med.volume.pipeline import make_scorer

    found = [c for c in discover(AllowedRoots([Path(data_root)]), axis=axis).candidates
             if LESION_HINT in (c.description or "").upper()]
    if not found:
        return None
    candidate = found[0]
    volume = load_candidate(candidate, axis)
    key = study_key_of(volume, candidate)  # the key the dashboard itself files the study under
    folder = dashboard_output_dir(Path(output), key)
    if (folder / STUDY_JSON).is_file():
        return key
    options = demo_options()
    if bank is not None:
        options = options.with_references(bank=str(bank))
    info = {"method": DEFAULT_METHOD, "description": candidate.description, "study_date": candidate.study_date}
    score_for_review(volume, key, folder, make_scorer(options), info)
    return key
