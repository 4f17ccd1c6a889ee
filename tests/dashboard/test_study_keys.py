"""One study discovery, one key scheme: batch scoring and the dashboard file a study under the same
pseudonymous key, and a dashboard store written before the unified scheme keeps its sign-offs."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from adaptclip_med.batch.discovery import discover_folder
from adaptclip_med.demo.phantom import write_dicom_series
from adaptclip_med.io.discovery import study_key_for_uid, volume_file_key
from adaptclip_med.review.access import READ, SIGN_OFF, Identity
from adaptclip_med.review.discovery import discover, study_keys_in_use
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import ReviewStore
from adaptclip_med.review.studies import dashboard_output_dir
from adaptclip_med.utils.redact import pseudonymous_key

UID = "1.2.826.0.1.3680043.99.7"
RADIOLOGIST = Identity("https://idp.test", "sub-1", "Dr Keys", "", frozenset({READ, SIGN_OFF}))


def _nifti(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.linspace(0, 1, 4 * 8 * 8, dtype=np.float32).reshape(8, 8, 4), np.eye(4)), str(path))
    return path


def _tree(root):
    hu = np.full((3, 16, 16), -1000.0, dtype=np.float32)
    write_dicom_series(hu, root / "DOE_JANE", series_description="HEAD", study_uid=UID, patient_name="DOE^JANE")
    return _nifti(root / "DOE_JANE" / "scan.nii.gz")


def test_batch_and_dashboard_key_a_dicom_study_alike_and_no_key_holds_a_name_or_uid(tmp_path):
    root = tmp_path / "in"
    nifti = _tree(root)
    batch = discover_folder(root)
    dashboard = discover(AllowedRoots([root]))
    dicom_keys = {c.study_key for c in dashboard.candidates if c.kind == "dicom"}
    assert dicom_keys == {study_key_for_uid(UID)} and study_key_for_uid(UID) in {t.key for t in batch.studies}
    # batch keeps its volume-file names (output folders, journals): kind prefix + hash of the root-relative path
    assert volume_file_key(nifti, root) in {t.key for t in batch.studies}
    (listed,) = [c for c in dashboard.candidates if c.kind == "nifti"]
    assert listed.study_key == volume_file_key(nifti.resolve(), tmp_path.anchor) and listed.study_key.startswith("nifti-")
    for key in [*(t.key for t in batch.studies), *(c.study_key for c in dashboard.candidates)]:
        assert "DOE" not in key and UID not in key and "scan" not in key


def test_same_file_names_in_two_roots_or_uploads_never_share_a_key(tmp_path):
    first, second = _nifti(tmp_path / "a" / "scan.nii.gz"), _nifti(tmp_path / "b" / "scan.nii.gz")
    keys = {c.study_key for c in discover(AllowedRoots([first.parent, second.parent])).candidates}
    assert len(keys) == 2  # relative names collide; the dashboard's one store must never merge their sign-offs


def test_a_store_keyed_by_the_old_scheme_keeps_its_sign_offs_and_scored_results(tmp_path):
    root, output = tmp_path / "data", tmp_path / "out"
    signed, scored, fresh = (_nifti(root / name) for name in ("signed.nii.gz", "scored.nii.gz", "new.nii.gz"))
    legacy = {path: pseudonymous_key("file", str(path.resolve())) for path in (signed, scored)}
    store = ReviewStore.in_folder(output)
    store.sign_off(legacy[signed], "confirmed", RADIOLOGIST, "left frontal")
    dashboard_output_dir(output, legacy[scored]).mkdir(parents=True)  # scored by an older dashboard, not signed

    found = discover(AllowedRoots([root]), keys_in_use=study_keys_in_use(store, output))
    keys = {c.paths[0].name: c.study_key for c in found.candidates}
    assert keys["signed.nii.gz"] == legacy[signed] and keys["scored.nii.gz"] == legacy[scored]
    assert keys["new.nii.gz"] == volume_file_key(fresh.resolve(), tmp_path.anchor)
    review = store.review(keys["signed.nii.gz"])
    assert review is not None and review.decision == "confirmed" and review.notes == "left frontal"
    assert store.verify().ok  # nothing in the sealed audit ledger was rewritten
