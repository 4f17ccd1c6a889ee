"""The demo lesion study scored by the real CLI (packaged demo model, ``--parametric-map``), and
OHIF 3.13 served by nginx in front of Debian's Orthanc holding the source series and our outputs
(scripts/ohif_testbed.py), for the viewer tests.  Skipped, with the reason, only where nginx,
Orthanc with its DICOMweb plugin or the installed OHIF viewer are missing."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dicom_truth import SourceSeries, outputs_by_class  # noqa: E402
from ohif_page import CHROMIUM, CHROMIUM_ARGS, SKIP_TOUR, STEP_TIMEOUT_MS, VIEWPORT  # noqa: E402



ohif_testbed = load_script("ohif_testbed")


@dataclass(frozen=True)
class ScoredStudy:
    study_dir: Path
    bank: Path
    outputs: Path
    source: SourceSeries
    by_class: dict[str, list[Path]]

    def source_files(self) -> list[Path]:
        return sorted(p for p in self.study_dir.iterdir() if p.is_file())

    def upload_files(self) -> list[Path]:
        return self.source_files() + [p for paths in self.by_class.values() for p in paths]


def score_with_cli(study_dir: Path, bank: Path, outputs: Path) -> dict[str, list[Path]]:
    """``adaptclip-med score --adapters demo --window brain --parametric-map --key-objects`` in a
    subprocess (the user's path); returns the DICOM objects it wrote, by SOP Class UID (SEG, PMAP,
    SR, KOS: all go to Orthanc, so a KOS that upset OHIF would show as a console error)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ADAPTCLIP_MED_PROGRESS": "0"}
    command = [sys.executable, "-m", "adaptclip_med.cli.main", "score", str(study_dir), "--references", str(bank),
               "--adapters", "demo", "--window", "brain", "--parametric-map", "--key-objects", "--out", str(outputs)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return outputs_by_class(outputs)


@pytest.fixture(scope="session")
def scored_outputs(tmp_path_factory) -> ScoredStudy:
    """The demo phantom with lesions, 16 slices, scored against a bank of two normal phantoms (the
    demo bank builder)."""
    from adaptclip_med.demo.bank import ensure_demo_bank
    from adaptclip_med.demo.phantom import make_demo_dataset
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    base = tmp_path_factory.mktemp("ohif-study")
    data = make_demo_dataset(base / "data", seed=0, n_references=2, shape=(16, 96, 96))
    options = demo_options()
    bank = ensure_demo_bank(data.reference_dirs, model_for(options), options.preprocessing(), base / "banks")
    outputs = base / "scored"
    by_class = score_with_cli(data.study_dir, bank, outputs)
    return ScoredStudy(data.study_dir, bank, outputs, SourceSeries.read(data.study_dir, data.ground_truth_nifti), by_class)


def require_testbed() -> None:
    missing = ohif_testbed.missing_parts()
    if missing:
        pytest.skip("OHIF testbed unavailable: missing " + "; ".join(missing))


@pytest.fixture(scope="session")
def scored_study(request) -> ScoredStudy:
    """:func:`scored_outputs` for the browser tests: skipped before the scoring when the testbed is
    missing (nothing to look at without the viewer)."""
    require_testbed()
    return request.getfixturevalue("scored_outputs")


@pytest.fixture(scope="session")
def ohif(scored_study, tmp_path_factory):
    """OHIF + nginx + Orthanc on loopback with the scored study uploaded; yields the testbed."""
    require_testbed()
    with ohif_testbed.OhifTestbed(tmp_path_factory.mktemp("ohif-testbed")) as viewer:
        files = scored_study.upload_files()
        assert viewer.upload(files) == len(files)
        yield viewer


@pytest.fixture()
def rescored(scored_study, tmp_path) -> dict[str, list[Path]]:
    """The same study scored a second time (a re-run), into another folder."""
    return score_with_cli(scored_study.study_dir, scored_study.bank, tmp_path / "rescored")


@pytest.fixture()
def empty_ohif(tmp_path):
    """A second, empty testbed (for tests that need their own set of series in Orthanc)."""
    require_testbed()
    with ohif_testbed.OhifTestbed(tmp_path / "testbed") as viewer:
        yield viewer


@pytest.fixture(scope="session")
def browser(playwright_driver):
    chromium = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(SKIP_TOUR)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    yield page
    context.close()
