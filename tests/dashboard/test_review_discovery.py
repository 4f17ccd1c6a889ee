"""Study discovery under the data roots, series sharing a folder, and locating a study's source."""

from __future__ import annotations

import numpy as np

from adaptclip_med.demo.phantom import write_dicom_series
from adaptclip_med.review.discovery import discover, scan_path
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import StudyLocation
from adaptclip_med.review.studies import load_source, locate_source


def _two_series_in_one_folder(folder):
    hu = np.full((4, 16, 16), -1000.0, dtype=np.float32)
    hu[:, 4:12, 4:12] = 40.0
    write_dicom_series(hu, folder, series_description="THIN", series_number=1, study_uid="1.2.826.0.1.3680043.99.1",
                       file_prefix="a", patient_name="DOE^JANE")
    write_dicom_series(hu[:3], folder, series_description="THICK", series_number=2, study_uid="1.2.826.0.1.3680043.99.1",
                       file_prefix="b", patient_name="DOE^JANE")
    (folder / "readme.txt").write_text("not an image")


def test_series_sharing_a_folder_are_listed_and_loaded_separately(tmp_path):
    root = tmp_path / "root"
    _two_series_in_one_folder(root / "mixed")
    found = discover(AllowedRoots([root]))
    by_description = {c.description: c for c in found.candidates}
    assert set(by_description) == {"THIN", "THICK"} and found.unusable_files == 1
    thin, thick = by_description["THIN"], by_description["THICK"]
    assert (thin.num_slices, thick.num_slices) == (4, 3) and thin.study_key == thick.study_key
    assert thin.patient_name is None and "DOE" not in thin.label  # names only with the flag
    assert discover(AllowedRoots([root]), show_patient_names=True).candidates[0].patient_name == "DOE^JANE"

    staging = tmp_path / "staging"
    staging.mkdir()
    folder = scan_path(thick, found.candidates, staging)
    assert folder.is_relative_to(staging) and len(list(folder.iterdir())) == 3

    volume = load_source(thick.source(), AllowedRoots([root]))
    assert volume.array.shape[0] == 3


def test_a_study_key_finds_its_default_series_under_the_roots(tmp_path):
    root = tmp_path / "root"
    _two_series_in_one_folder(root / "mixed")
    candidates = discover(AllowedRoots([root])).candidates
    key = candidates[0].study_key
    location = locate_source(key, StudyLocation(output_dir=tmp_path / "out"), candidates)
    thin = next(c for c in candidates if c.description == "THIN")
    assert (location.source, location.series_key, location.output_dir) == (thin.source().source, thin.key, tmp_path / "out")
    assert locate_source("unknown", StudyLocation(), candidates) == StudyLocation()
