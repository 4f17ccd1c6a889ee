"""The AI node next to a real Orthanc, as docs/deploy-pacs.md sets it up: a phantom CT study stored
into Orthanc with dcmtk's storescu is routed by the Lua OnStableSeries rule to the node, scored with
the packaged demo model, and its result objects come back into the SAME study in Orthanc; the
results are never routed again; strangers are refused; a node SIGKILLed while receiving scores
and sends the study exactly once after a restart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from adaptclip_med.demo.ct_head import PIXEL_MM, SLICE_MM, make_ct_head
from adaptclip_med.demo.dataset import make_ct_demo_dataset
from adaptclip_med.demo.phantom import write_dicom_series
from adaptclip_med.node.store import SENT

from tests.support.scripts import load_script

pytestmark = pytest.mark.slow

node_testbed = load_script("node_testbed")
testbed = node_testbed.orthanc_testbed

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
PMAP_CLASS = "1.2.840.10008.5.1.4.1.1.30"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR (TID 1500)
KO_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"  # Key Object Selection
#: What the node must bring back into the study (SOP classes): IHE AI Results, KO on by default.
EXPECTED_RESULTS = {SEG_CLASS, PMAP_CLASS, SR_CLASS, KO_CLASS}


def uid_of(folder: Path) -> str:
    return str(pydicom.dcmread(sorted(folder.glob("*.dcm"))[0]).StudyInstanceUID)


def node_rows(state_dir: Path) -> list[dict]:
    db = sqlite3.connect(state_dir / "node.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM studies")]
    finally:
        db.close()


def node_skipped(state_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(state_dir / "node.sqlite")
    try:
        return dict(db.execute("SELECT reason, count FROM skipped").fetchall())
    finally:
        db.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    if not testbed.orthanc_available() or testbed.dcmtk_tool("storescu") is None:
        pytest.skip("needs Debian orthanc, orthanc-dicomweb and dcmtk")
    work = tmp_path_factory.mktemp("node-demo")
    data = make_ct_demo_dataset(work / "data", normals=2)
    return data, node_testbed.demo_bank(work, data.normal_dirs)


def second_study(folder: Path, slices: int = 24) -> Path:
    hu, _ = make_ct_head(77, slices, 256)
    write_dicom_series(hu, folder, spacing=(SLICE_MM, PIXEL_MM, PIXEL_MM), study_uid=generate_uid(),
                       series_description="SYNTHETIC PHANTOM HEAD", study_description="SYNTHETIC HEAD CT")
    return folder


def test_a_study_stored_into_orthanc_comes_back_scored_in_the_same_study(tmp_path, demo):
    data, bank = demo
    study_uid = uid_of(data.study_dir)
    with node_testbed.PacsWithNode(tmp_path, bank) as setup:
        sent = setup.storescu(data.study_dir)
        assert sent.returncode == 0, sent.stderr
        results = node_testbed.wait_for(
            lambda: (found := setup.results_in_pacs(study_uid)) and {s["SOPClassUID"] for s in found} >= EXPECTED_RESULTS
            and found, 600, what="SEG, Parametric Map, SR and KO in Orthanc")
        for series in results:  # in the source study, not a new one
            assert series["StudyInstanceUID"] == study_uid
        seg = next(s for s in results if s["SOPClassUID"] == SEG_CLASS)
        assert seg["Modality"] == "SEG" and seg["instances"] == 1

        # the results are stable series too: give the Lua rule every chance to route them, then check it did not
        node_testbed.wait_for(lambda: all(j["State"] == "Success" for j in setup.pacs.jobs("DicomModalityStore")), 60,
                              what="routing jobs finished")
        time.sleep(3 * 2 + setup.quiet_seconds + 2)
        routed = setup.pacs.jobs("DicomModalityStore")
        assert len(routed) == 1, "the study must be routed once (its CT series), never its results"
        rows = node_rows(setup.state_dir)
        assert len(rows) == 1
        row = rows[0]
        assert (row["state"], row["instances"], row["score_attempts"], row["send_attempts"]) == (SENT, 16, 1, 1)
        assert row["sent_objects"] == len(results)
        assert node_skipped(setup.state_dir) == {}  # Orthanc never sent a result object to the node
        assert len([s for s in setup.pacs.study_series(study_uid) if s["SOPClassUID"] == SEG_CLASS]) == 1

        # strangers: the node refuses an AE that is not on its allow-list, Orthanc one it does not know
        to_node = setup.storescu(data.study_dir, port=setup.node_port, calling="STRANGER", called=node_testbed.NODE_AET)
        assert to_node.returncode != 0 and "Association Rejected" in to_node.stderr + to_node.stdout
        to_pacs = setup.storescu(data.study_dir, calling="STRANGER")
        assert to_pacs.returncode != 0
        log = setup.node.log_text()
        assert study_uid not in log and "PHANTOM" not in log
        assert setup.node.stop() == 0 and "node AINODE stopped" in setup.node.log_text()  # SIGTERM: a clean stop


def test_a_node_killed_while_receiving_scores_and_sends_the_study_once(tmp_path, demo):
    _, bank = demo
    study = second_study(tmp_path / "study2")
    study_uid = uid_of(study)
    with node_testbed.PacsWithNode(tmp_path / "run", bank, quiet_seconds=10.0) as setup:
        spool = setup.state_dir / "spool"
        assert setup.storescu(study).returncode == 0
        # the first whole instance (a ".tmp-*" file is a write still in progress: killing the node then
        # leaves nothing acknowledged, and nothing to check)
        node_testbed.wait_for(lambda: spool.is_dir() and any(not p.name.startswith(".") for p in spool.rglob("*.dcm")),
                              300, poll=0.02, what="the first routed instance")
        setup.node.kill()  # mid-study: the quiet period has not passed
        rows = node_rows(setup.state_dir)
        # receiving, or not even recorded yet (killed between writing the first file and committing it)
        assert [r["state"] for r in rows] in ([], ["receiving"])
        # whole instances; a ".tmp-*" file is a write the kill interrupted (never acknowledged, removed at start-up)
        on_disk = [p for p in spool.rglob("*.dcm") if not p.name.startswith(".")]
        assert len(on_disk) >= max([r["instances"] for r in rows] + [1])  # every acknowledged instance is on disk
        assert all(pydicom.dcmread(p).StudyInstanceUID == study_uid for p in on_disk)
        for path in on_disk:  # every instance acknowledged so far is whole on disk (temporary files aside)
            assert pydicom.dcmread(path).pixel_array.shape == (256, 256)

        # Orthanc's routing job fails when the node dies mid-association; once the node is back, the PACS
        # resends it (here through Orthanc's REST API, as its administrator or a retry script would)
        jobs = node_testbed.wait_for(
            lambda: (found := setup.pacs.jobs("DicomModalityStore")) and all(j["State"] in ("Success", "Failure") for j in found)
            and found, 120, what="Orthanc's routing job ending")
        setup.node.start()
        for job in jobs:  # Failure unless every instance had gone out before the kill
            if job["State"] == "Failure":
                setup.pacs.post_json(f"/jobs/{job['ID']}/resubmit", {})
        node_testbed.wait_for(lambda: (r := node_rows(setup.state_dir)) and r[0]["state"] == SENT, 600,
                              what="study sent after the restart")
        row = node_rows(setup.state_dir)[0]
        assert (row["instances"], row["score_attempts"], row["send_attempts"]) == (24, 1, 1)
        results = setup.results_in_pacs(study_uid)
        assert {s["SOPClassUID"] for s in results} >= EXPECTED_RESULTS
        assert len([s for s in results if s["SOPClassUID"] == SEG_CLASS]) == 1
        assert all(s["StudyInstanceUID"] == study_uid for s in results)
        assert len(setup.pacs.jobs("DicomModalityStore")) == 1  # resubmitted, not routed a second time
        assert not list(spool.rglob(".tmp-*"))  # interrupted writes were cleared at start-up
        assert "Traceback" not in setup.node.log_text()
