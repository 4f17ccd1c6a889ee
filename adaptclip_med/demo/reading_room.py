"""``dashboard --demo`` opens in the reading room, on the lesion study, already scored.

The README promises the reading room; the demo used to open on a worklist of unscored studies with
the lesion study last and the ground-truth label map offered as one more "study".  So the demo's
data folder holds studies only (the label map lives beside it), and the lesion study is scored
once, few-shot with the demo bank, into the dashboard's own output, where the worklist finds it
first and the app opens it.

:func:`set_up_demo_dashboard` is everything ``dashboard --demo`` prepares before the server starts
(the CLI only parses its flags and calls it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from adaptclip_med.volume.options import ScoringOptions

#: Folder under the dashboard output holding the demo's synthetic studies and normal scans.
DEMO_DATA = "demo_data"
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


def prescore_lesion_study(output: Path, data_root: Path, bank: Path | str | None, axis: str = "axial") -> str | None:
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


@dataclass(frozen=True)
class DemoDashboard:
    """What the demo hands the dashboard: the demo model's scoring options, the data roots to list
    and the reference bank selected for scoring (None: none)."""

    scoring: "ScoringOptions"
    data_roots: tuple[Path, ...]
    bank: str | None


def set_up_demo_dashboard(output: Path, banks: Path, data_roots: tuple[Path, ...], bank: str | None,
                          say: Callable[[str], None] = print) -> DemoDashboard:
    """Prepare ``dashboard --demo``: with no data roots of the user's, make the phantom studies, the
    demo bank (selected unless ``bank`` names another) and the scored lesion study.

    ``bank`` is the user's ``--references`` already resolved to a folder (or None); ``say`` prints
    the progress lines for the slow first-time steps."""
    from adaptclip_med.demo.run import demo_options

    scoring = demo_options()
    if data_roots:
        return DemoDashboard(scoring, tuple(data_roots), bank)
    root = demo_data_root(output)
    bank = bank or str(demo_bank(root, banks, say))
    say("scoring the demo's lesion study (demo model, few-shot with the demo bank) for the reading room")
    prescore_lesion_study(output, root, bank, scoring.slicing.axis)
    return DemoDashboard(scoring, (root,), bank)


def demo_data_root(output: Path) -> Path:
    """The synthetic phantom study and normal references, made once under the output folder."""
    from adaptclip_med.demo.dataset import make_ct_demo_dataset

    root = output / DEMO_DATA
    truth = truth_outside(output, root)  # the label map is not a study: never under the data root
    if not (root / "study").is_dir():
        make_ct_demo_dataset(root, seed=0, normals=3, truth_path=truth)
    return root


def demo_bank(data_root: Path, banks: Path, say: Callable[[str], None] = print) -> Path:
    """A reference bank of the demo's normal phantoms, built once, so a first-time user can open the
    demo study and score it few-shot straight away (the library page can build others)."""
    from adaptclip_med.demo.bank import DEMO_BANK, ensure_demo_bank
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    folder = data_root / "normals"
    if not folder.is_dir():  # a demo folder made before the CT-like phantoms
        folder = data_root / "references"
    scans = sorted(p for p in folder.iterdir() if p.is_dir())
    if not (banks / DEMO_BANK / "bank.json").is_file():
        say(f"building the demo reference bank '{DEMO_BANK}' from {len(scans)} normal phantoms (demo model)")
    options = demo_options()
    return ensure_demo_bank(scans, model_for(options), options.preprocessing(), banks, DEMO_BANK)
