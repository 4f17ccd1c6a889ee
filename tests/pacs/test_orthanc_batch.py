"""``batch --dicomweb`` against a real Orthanc: QIDO filters, WADO into a private temp folder, STOW
of the SEG results, resume without duplicate SEGs, and a PACS that goes away mid-run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptclip_med.batch.dicomweb import DicomwebSource, RetryPolicy
from adaptclip_med.batch.runner import run_batch
from adaptclip_med.batch.worker import BatchOptions

from tests.support.dicom_studies import CLI_SHIM, ct_series, good_study, identifiers, sr_document, tiny_cli_args

pytestmark = pytest.mark.slow


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def cli_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("batch_cli", CLI_SHIM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def seg_series_per_study(pacs, modality: str = "SEG") -> dict[str, int]:
    counts: dict[str, int] = {}
    for study_id in pacs.get_json("/studies"):
        uid = pacs.get_json(f"/studies/{study_id}")["MainDicomTags"]["StudyInstanceUID"]
        modalities = [series["MainDicomTags"].get("Modality") for series in pacs.get_json(f"/studies/{study_id}/series")]
        counts[uid] = modalities.count(modality)
    return counts


def test_batch_dicomweb_scores_filtered_studies_and_stores_segs_back(tmp_path, orthanc):
    src = tmp_path / "src"
    ct = [good_study(src, f"ct{i}", seed=i) for i in range(2)]
    sr = sr_document(src / "ct0" / "report.dcm", ct[0].uid)
    mr = good_study(src, "mr", seed=5)
    for path in mr.files:  # an MR study that the --modality CT filter must leave on the PACS
        path.unlink()
    mr.files = ct_series(mr.folder, mr.uid, seed=5, modality="MR", description="AX T2")
    files = [*ct[0].files, *ct[1].files, sr, *mr.files]
    assert orthanc.upload(files) == len(files)

    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    args = ["batch", "--dicomweb", orthanc.dicomweb_url, "--modality", "CT", "--stow", "--out", str(out),
            "--scratch-dir", str(scratch), "--retries", "2", "--backoff", "0.1", *tiny_cli_args()]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 0, result.output
    assert "2 studies: 2 scored, 0 already done, 0 failed" in result.output
    worklist = rows(out / "worklist.csv")
    assert sorted(r["study_key"] for r in worklist) == sorted(s.key for s in ct)
    assert all(r["status"] == "done" for r in worklist)
    selection = json.loads((out / ct[0].key / "study.json").read_text())["batch"]["series_selection"]
    assert {"series": "SR series #99 ''", "taken": False, "reason": "modality SR holds no image (not retrieved)"} in selection
    assert list(scratch.iterdir()) == []  # the private WADO folders are gone
    assert seg_series_per_study(orthanc) == {ct[0].uid: 1, ct[1].uid: 1, mr.uid: 0}
    # the TID 1500 SR went back into each scored study too (ct0 also holds the source report, SR #99)
    assert seg_series_per_study(orthanc, "SR") == {ct[0].uid: 2, ct[1].uid: 1, mr.uid: 0}

    again = CliRunner().invoke(cli_app(), args)  # resume: nothing to redo, no duplicate SEG in the PACS
    assert again.exit_code == 0, again.output
    assert "2 studies: 0 scored, 2 already done, 0 failed" in again.output
    assert seg_series_per_study(orthanc) == {ct[0].uid: 1, ct[1].uid: 1, mr.uid: 0}
    assert rows(out / "worklist.csv") == worklist
    for secret in identifiers(*ct, mr):
        assert secret not in result.output + again.output + (out / "worklist.csv").read_text()


class PacsGoesAway(DicomwebSource):
    """Orthanc is stopped right after the first study has been fetched."""

    def __init__(self, pacs, **kw):
        super().__init__(pacs.dicomweb_url, **kw)
        self.pacs = pacs

    def open_study(self, task, folder, rules):
        files = super().open_study(task, folder, rules)
        self.pacs.stop()
        return files


def test_pacs_going_away_mid_run_fails_studies_after_retries_and_resume_recovers(tmp_path, orthanc, scoring):
    studies = [good_study(tmp_path / "src", f"s{i}", seed=i) for i in range(2)]
    orthanc.upload([p for s in studies for p in s.files])
    out = tmp_path / "out"
    options = BatchOptions(out_dir=out, stow=True)
    source = PacsGoesAway(orthanc, retry=RetryPolicy(attempts=2, backoff_seconds=0.05))
    summary = run_batch(source, scoring, options)
    assert (summary.studies, summary.scored, summary.failed) == (2, 0, 2)
    first, second = sorted(s.key for s in studies)
    errors = {r["study_key"]: r["reason"] for r in rows(out / "errors.csv")}
    assert errors[first] == (f"scored, but the results were not stored: STOW of the results of study {first} "
                             f"failed after 2 attempts (ConnectionError)")
    assert errors[second] == f"QIDO series search of study {second} failed after 2 attempts (ConnectionError)"

    orthanc.start()  # the PACS is back: failed studies are retried on resume
    summary = run_batch(DicomwebSource(orthanc.dicomweb_url), scoring, options)
    assert (summary.scored, summary.failed) == (2, 0)
    assert rows(out / "errors.csv") == []
    assert seg_series_per_study(orthanc) == {s.uid: 1 for s in studies}
