"""No patient identifiers through paths: folder and file names (which often hold patient names)
never reach errors.csv, worklist.csv, the journal, study.json or the log; outputs that carry
identity are readable by their owner only.

Reproduced on main: errors.csv, the journal and the log named files by their relative path
(``DOE_JOHN/ct/img_0003.dcm``), a failing NIfTI study by its absolute path, and the progress bar
showed the absolute path of every NIfTI study.
"""

from __future__ import annotations

import csv
import stat

import nibabel as nib
import numpy as np
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from adaptclip_med.batch.file_index import file_index_path
from adaptclip_med.review.store import ReviewStore
from tests.support.dicom_studies import ct_series, tiny_cli_args, truncate
from test_cli import app

NAMES = ("DOE_JOHN", "ROE_RICHARD", "POE_EDGAR", "LOE_ANNA")


def _tree(src):
    ct_series(src / "LOE_ANNA" / "head", generate_uid(), seed=1)
    broken = ct_series(src / "DOE_JOHN" / "ct", generate_uid(), seed=2)
    truncate(broken[2])  # a study that fails, naming the slice that caused it
    (src / "ROE_RICHARD").mkdir()
    hu = np.full((5, 40, 40), -1000.0, np.float32)
    hu[:, 10:30, 10:30] = 40
    nib.save(nib.Nifti1Image(hu, np.eye(4)), src / "ROE_RICHARD" / "ROE_RICHARD_ct.nii.gz")
    (src / "ROE_RICHARD" / "ROE_RICHARD_junk.dcm").write_bytes(b"garbage" * 50)
    (src / "POE_EDGAR.nii").write_bytes(b"\x5c\x01" + b"\0" * 400)  # a NIfTI that cannot be read


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_batch_outputs_and_log_name_files_by_key_only(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    _tree(src)
    result = CliRunner().invoke(app(), ["batch", str(src), "--out", str(out), *tiny_cli_args()])
    assert result.exit_code == 4, result.output + result.stderr
    shown = result.stdout + result.stderr
    index = file_index_path(out)
    for path in out.rglob("*"):
        if not path.is_file() or path == index or path.suffix == ".dcm":
            continue  # the index is the operator's private key; DICOM results carry identity by design
        data = path.read_bytes()
        for name in (*NAMES, str(src)):
            assert name.encode() not in data, f"{name} leaked into {path.relative_to(out)}"
    for name in (*NAMES, str(src)):
        assert name not in shown, f"{name} leaked into the output: {shown}"
    with open(out / "errors.csv", newline="") as handle:
        errors = {row["study_key"]: row["reason"] for row in csv.DictReader(handle)}
    assert any("file-" in reason and "truncated file" in reason for reason in errors.values())
    assert "not a DICOM file" in errors.values()
    assert _mode(index) == 0o600
    with open(index, newline="") as handle:
        paths = {row["file_key"]: row["relative_path"] for row in csv.DictReader(handle)}
    junk = next(key for key, reason in errors.items() if reason == "not a DICOM file")
    assert paths[junk] == "ROE_RICHARD/ROE_RICHARD_junk.dcm"  # the operator can find the file again
    segs = list(out.rglob("anomaly_seg.dcm"))
    assert segs and all(_mode(seg) == 0o600 for seg in segs)


def test_the_review_store_is_created_readable_by_its_owner_only(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    assert _mode(store.path) == 0o600
    loose = tmp_path / "old.sqlite"
    loose.touch(mode=0o644)
    assert _mode(ReviewStore(loose).path) == 0o600  # an existing store is narrowed too
