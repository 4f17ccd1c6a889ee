"""Headless flows through every page with Streamlit's AppTest and the tiny random model.

Reference library (select normal scans, build/rename/delete a bank), worklist (open a study from the
data roots, batch results), viewer (score on demand, slider, buttons, threshold), sign-off (saved
with audit trail, still there after a reload = a new session), exports, and the no-weights and
unreadable-study messages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from adaptclip_med.review.discovery import discover
from adaptclip_med.review.paths import AllowedRoots
from adaptclip_med.review.store import ReviewStore
from adaptclip_med.volume.bank_builder import build_reference_bank
from adaptclip_med.volume.pipeline import make_scorer, model_for
from adaptclip_med.volume.study_run import score_study

from tests.support.scripts import load_script

TIMEOUT = 180
LOCAL_USER = __import__("getpass").getuser()  # local mode: the OS account signs
APP = Path(__file__).resolve().parents[2] / "adaptclip_med" / "dashboard" / "entry.py"


def _app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def _problems(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [str(d.value) for d in at.dataframe]
    return "\n".join(str(p) for p in parts)


def _image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.get("image") for caption in image.captions]


def _candidates(root: Path):
    return discover(AllowedRoots([root])).candidates


def _goto(at: AppTest, page: str) -> AppTest:
    return at.radio(key="nav").set_value(page).run()


def test_reference_library_builds_renames_and_deletes_banks(dashboard_config, demo_data):
    config = dashboard_config()
    at = _goto(_app().run(), "Reference library")
    assert not _problems(at)
    at.button(key="lib_scan").click().run()
    normal = [c.key for c in _candidates(demo_data.root) if "NORMAL" in c.description]
    assert len(normal) == 2 and sum("NORMAL" in label for label in at.multiselect(key="ref_pick").options) == 2
    assert "PHANTOM^" not in _texts(at)  # no patient names without --show-patient-names
    at.multiselect(key="ref_pick").set_value(normal).run()
    at.toggle(key="lib_thumbs").set_value(True).run()
    assert sum("NORMAL" in caption for caption in _image_captions(at)) == 2  # thumbnails of the picked scans
    at.text_input(key="protocol").set_value("CT head non-contrast").run()
    at.button(key="build_bank").click().run()
    assert not _problems(at)
    bank = config.banks_root / "ct-head-non-contrast"
    meta = json.loads((bank / "bank.json").read_text())
    assert len(meta["scans"]) == 2 and meta["calibration"] is not None and meta["preprocessing"]["window"] == "brain"
    assert any("built from 2 scan(s)" in s.value for s in at.success)

    at.selectbox(key="bank_pick").set_value("ct-head-non-contrast")
    at.text_input(key="bank_new_name").set_value("ct-head").run()
    at.button(key="bank_rename").click().run()
    assert (config.banks_root / "ct-head" / "bank.json").is_file() and not bank.exists()
    at.checkbox(key="bank_delete_confirm").check().run()
    at.button(key="bank_delete").click().run()
    assert not (config.banks_root / "ct-head").exists() and not _problems(at)


def test_a_flagged_series_is_built_into_a_bank_only_after_confirmation(dashboard_config, demo_data):
    config = dashboard_config()
    at = _goto(_app().run(), "Reference library")
    at.button(key="lib_scan").click().run()
    flagged = [c.key for c in _candidates(demo_data.root) if "LESION" in c.description]
    normal = [c.key for c in _candidates(demo_data.root) if "NORMAL" in c.description]
    at.multiselect(key="ref_pick").set_value([*normal, *flagged]).run()
    assert at.button(key="build_bank").disabled  # the app's own flag stops the build
    assert any("not a normal reference" in w.value for w in at.warning)
    assert not any(config.banks_root.glob("*/bank.json")) if config.banks_root.is_dir() else True
    at.checkbox(key="ref_confirm_flagged").check().run()
    assert not at.button(key="build_bank").disabled
    at.multiselect(key="ref_pick").set_value(normal).run()  # without the flagged series: no confirmation asked
    assert not at.button(key="build_bank").disabled and not [c for c in at.checkbox if c.key == "ref_confirm_flagged"]


def test_patient_names_only_with_the_flag(dashboard_config):
    dashboard_config(show_patient_names=True)
    at = _goto(_app().run(), "Reference library")
    at.button(key="lib_scan").click().run()
    assert "PHANTOM^REFERENCE1" in _texts(at)


@pytest.fixture()
def bank_for(demo_data, tiny_options):
    """A calibrated 2-scan bank under the configured banks root (built through the library API)."""

    def make(config):
        build_reference_bank("ct-head", list(demo_data.reference_dirs), model_for(tiny_options),
                             tiny_options.preprocessing(), config.banks_root, batch_size=8)
        return config.banks_root / "ct-head"

    return make


def test_the_demo_opens_in_the_reading_room_on_the_top_study(dashboard_config, demo_data, tiny_options):
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.review.studies import dashboard_output_dir, score_for_review, study_key_of

    config = dashboard_config(demo=True)
    candidate = next(c for c in _candidates(demo_data.root) if "LESIONS" in c.description)
    volume, _ = load_study(demo_data.study_dir)
    key = study_key_of(volume, candidate)
    score_for_review(volume, key, dashboard_output_dir(config.output, key), make_scorer(tiny_options),
                     {"description": candidate.description})
    at = _app().run()
    assert at.radio(key="nav").value == "Viewer" and not _problems(at)
    assert at.session_state["study"].study_key == key  # straight into the reading room, no worklist click
    at = _goto(at, "Worklist")  # and once there, the reader's own navigation wins
    assert at.radio(key="nav").value == "Worklist" and not _problems(at)


def test_open_score_view_sign_off_and_reload(dashboard_config, demo_data, bank_for, tmp_path):
    config = dashboard_config()
    bank_for(config)
    study = next(c for c in _candidates(demo_data.root) if "LESIONS" in c.description)
    at = _app().run()
    at.button(key="scan_roots").click().run()
    at.selectbox(key="open_pick").set_value(study.key).run()
    at.button(key="open_candidate").click().run()
    assert at.radio(key="nav").value == "Viewer" and not _problems(at)
    assert at.selectbox(key="score_bank").value == "ct-head"
    at.button(key="score_now").click().run()
    assert not _problems(at)
    results = list((config.output / "studies").glob("*/study.json"))
    assert len(results) == 1
    study_key = results[0].parent.name
    report = json.loads(results[0].read_text())
    assert report["scoring"]["reference_bank"]["name"] == "ct-head"

    # viewer: the browser viewer (not run by AppTest) starts on the highest slice with the scoring window
    view = at.session_state["view_state"]
    assert view["z"] == report["top_slices"][0]["index"] and (view["level"], view["width"]) == (40.0, 80.0)
    assert at.session_state["view_nonce"]
    chosen = _two_findings_threshold(at.session_state["study"])
    at.slider(key="threshold").set_value(chosen).run()
    assert f"Findings at pixel threshold {chosen:.4f}" in "\n".join(e.label for e in at.expander)
    finding_inputs = [t for t in at.text_input if t.key.startswith(f"so_finding_{study_key}_")]
    assert finding_inputs, "a low threshold must produce at least one finding to annotate"
    # per-finding review: the list is clickable (the viewer jumps to the peak slice), each is accepted or rejected
    from adaptclip_med.outputs.findings import labelled_findings

    listed = labelled_findings(at.session_state["study"].probability, chosen, at.session_state["study"].spacing)
    assert len(listed.findings) >= 2, "the flow needs two findings: one accepted, one rejected"
    last = listed.findings[-1]
    at.button(key=f"so_goto_{study_key}_{last.finding_id}").click().run()
    assert at.session_state["view_state"]["z"] == last.peak_slice  # the viewer is sent to the peak slice
    at.radio(key=f"so_verdict_{study_key}_{last.finding_id}").set_value("reject").run()

    # sign-off with a finding note and the threshold override
    assert not [t for t in at.text_input if t.key == "reviewer"]  # no free-text reviewer any more
    at.button(key="decide_confirmed").click().run()
    at.text_area(key=f"so_notes_{study_key}").set_value("hyperdense focus")
    [t for t in at.text_input if t.key.startswith(f"so_finding_{study_key}_")][0].set_value("looks like a bleed")
    at.checkbox(key=f"so_override_{study_key}").check()
    # measurements the browser viewer reported (geometry only): kept with the sign-off, recomputed here
    drawn_on = int(at.session_state["view_state"]["z"])
    at.session_state["view_state"] = {**at.session_state["view_state"], "measurements": [
        {"kind": "distance", "z": drawn_on, "points": [[10, 10], [10, 30]], "length_mm": 1.0},
        {"kind": "ellipse", "z": drawn_on, "points": [[20, 20], [40, 36]]}]}
    at.button(key="sign").click().run()
    assert not _problems(at)
    assert any(f"Signed off: **Confirmed anomaly** by {LOCAL_USER}" in s.value.replace("\\", "") for s in at.success)
    review = ReviewStore.in_folder(config.output).review(study_key)
    assert review.reviewer == LOCAL_USER and review.reviewer_id.endswith(f"#{LOCAL_USER}")
    assert review.threshold_override == pytest.approx(chosen) and review.findings[0].note == "looks like a bleed"
    assert [f.verdict for f in review.findings] == ["accepted"] * (len(listed.findings) - 1) + ["rejected"]
    signed = ReviewStore.in_folder(config.output).audit_trail(study_key)[-1]
    assert signed.action == "sign_off" and signed.after["rejected_findings"] == [last.finding_id]  # rejected: in the audit
    spacing = at.session_state["study"].spacing
    assert [m["kind"] for m in review.measurements] == ["distance", "ellipse"]
    assert review.measurements[0]["length_mm"] == pytest.approx(20 * spacing[2], abs=1e-3)  # not the browser's 1.0
    assert review.measurements[1]["mean"] is not None and signed.after["measurements"] == list(review.measurements)

    at.button(key="export").click().run()
    exported = config.output / "reviewed" / study_key
    assert {p.name for p in exported.iterdir()} == {f"{study_key}_r1_{n}" for n in
                                                    ("reviewed_mask.nii.gz", "reviewed_seg.dcm", "reviewed_sr.dcm", "report.html", "report.pdf")}
    report_html = (exported / f"{study_key}_r1_report.html").read_text()
    assert LOCAL_USER in report_html and review.record_hash in report_html  # the chain head travels with the export
    _assert_reviewed_sr(exported / f"{study_key}_r1_reviewed_sr.dcm", review)
    _assert_only_accepted_findings(exported, study_key, listed, last.finding_id, at.session_state["study"])
    _assert_reader_measurements(exported / f"{study_key}_r1_reviewed_sr.dcm", review)

    # reload = a fresh session: the worklist shows the decision, the viewer restores the override
    again = _app().run()
    assert any("[Confirmed anomaly]" in o for o in again.selectbox(key="wl_pick").options)
    again.selectbox(key="wl_pick").set_value(study_key).run()
    again.button(key="wl_open").click().run()
    assert not _problems(again)
    assert again.slider(key="threshold").value == pytest.approx(chosen)
    assert again.session_state["view_state"]["measurements"] == [
        {k: m[k] for k in ("kind", "z", "points")} for m in review.measurements]  # drawn again on reopening
    assert any(f"Signed off: **Confirmed anomaly** by {LOCAL_USER}" in s.value.replace("\\", "") for s in again.success)
    assert [e.action for e in ReviewStore.in_folder(config.output).audit_trail(study_key)] == ["score", "sign_off", "export"]
    _assert_verify_names_tampering(config.output, tmp_path)


def _assert_verify_names_tampering(output: Path, scratch: Path) -> None:
    """``adaptclip-med review verify`` (the real command) on copies of the store the app wrote: intact,
    then one edited, one deleted and one reordered audit row, each named."""
    import sqlite3
    import subprocess
    import sys

    def verify(folder: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "adaptclip_med.cli.main", "review", "verify", str(folder)],
                              capture_output=True, text=True, timeout=120)

    intact = verify(output)
    assert intact.returncode == 0 and "intact (3 audit rows, 1 reviews)" in intact.stdout, intact.stderr
    cases = {"edited": (["UPDATE audit SET after = replace(after, 'confirmed', 'normal') WHERE id = 2"], "audit row 2 was edited"),
             "deleted": (["DELETE FROM audit WHERE id = 2"], "an audit row before row 3 was deleted"),
             "reordered": (["UPDATE audit SET id = -1 WHERE id = 1", "UPDATE audit SET id = 1 WHERE id = 2",
                            "UPDATE audit SET id = 2 WHERE id = -1"], "audit row 1 is out of order")}
    for name, (statements, message) in cases.items():
        copy = scratch / f"tampered-{name}"
        copy.mkdir()
        for part in output.glob("reviews.sqlite*"):  # with the write-ahead log, which holds recent commits
            shutil.copy(part, copy / part.name)
        connection = sqlite3.connect(copy / "reviews.sqlite", isolation_level=None)
        for statement in statements:
            connection.execute(statement)
        connection.close()
        result = verify(copy)
        assert result.returncode == 1 and message in result.stderr, (name, result.stderr)


def _two_findings_threshold(study) -> float:
    """A pixel threshold (4 decimals, as the slider shows) at which the map has 2 to 8 findings."""
    from adaptclip_med.outputs.findings import labelled_findings

    for q in np.linspace(0.90, 0.9995, 60):
        value = round(float(np.quantile(study.probability, q)), 4)
        if 2 <= len(labelled_findings(study.probability, value, study.spacing).findings) <= 8:
            return value
    raise AssertionError("no threshold gives two findings on this map")


def _assert_only_accepted_findings(exported: Path, study_key: str, listed, rejected: int, study) -> None:
    """The reviewed SEG and SR carry the accepted findings only."""
    import highdicom as hd
    import pydicom

    labels = listed.labels
    accepted = (labels > 0) & (labels != rejected)
    seg = pydicom.dcmread(exported / f"{study_key}_r1_reviewed_seg.dcm")
    assert int((seg.pixel_array > 0).sum()) == int(accepted.sum()) and not (accepted & (labels == rejected)).any()
    sr = hd.sr.srread(exported / f"{study_key}_r1_reviewed_sr.dcm")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(listed.findings) - 1  # one measurement group per accepted finding


def _assert_reader_measurements(path: Path, review) -> None:
    """The measurements kept with the sign-off are TID 1410 groups of the reviewed SR."""
    import highdicom as hd

    groups = {g.tracking_identifier: g for g in hd.sr.srread(path).content.get_planar_roi_measurement_groups()}
    line, roi = groups["reader measurement M1"], groups["reader measurement M2"]
    assert line.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert line.get_measurements()[0].value == pytest.approx(review.measurements[0]["length_mm"])
    assert roi.roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE
    assert {m.name.meaning for m in roi.get_measurements()} == {"Mean", "Standard Deviation", "Area"}


def _assert_reviewed_sr(path: Path, review) -> None:
    """The reviewed SR: dciodvfy-clean; the signed-in person is the observer and the verifier; the
    decision is the qualitative finding; the notes are text."""
    import highdicom as hd
    import pydicom
    from tests.support.dicom_validation import assert_dicom_conformant

    assert_dicom_conformant(path)
    sr = hd.sr.srread(path)
    (observer,) = sr.content.get_observer_contexts()
    person = observer.observer_identifying_attributes
    assert isinstance(person, hd.sr.PersonObserverIdentifyingAttributes)
    assert str(person.name) == f"{LOCAL_USER}^" and person.login_name == review.reviewer_id
    assert sr.VerificationFlag == "VERIFIED" and str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == f"{LOCAL_USER}^"
    group = sr.content.get_image_measurement_groups()[0]
    items = list(group[0].ContentSequence)
    coded = {i.ConceptNameCodeSequence[0].CodeMeaning: i.ConceptCodeSequence[0].CodeMeaning for i in items if i.ValueType == "CODE"}
    texts = [i.TextValue for i in items if i.ValueType == "TEXT"]
    assert coded.get("Anomaly at operating threshold") == "Present"
    assert "Reader's decision: Confirmed anomaly (revision 1)" in texts
    assert "Reader notes: hyperdense focus" in texts and any(t.endswith(": looks like a bleed") for t in texts)
    assert sr.content.get_volumetric_roi_measurement_groups()  # the confirmed regions, on the reviewed SEG
    seg = pydicom.dcmread(path.with_name(path.name.replace("reviewed_sr", "reviewed_seg")), stop_before_pixels=True)
    sr_header = pydicom.dcmread(path)
    assert "reviewed report (research)" in sr_header.SeriesDescription and "reviewed SEG" in seg.SeriesDescription
    assert sr_header.SeriesNumber % 10 == 6 and seg.SeriesNumber % 10 == 5  # distinct from the algorithm's series


def test_batch_results_open_with_their_source_found_by_study_key(dashboard_config, demo_data, bank_for, tmp_path,
                                                                 tiny_options):
    config = dashboard_config()
    bank = bank_for(config)
    results = tmp_path / "batch"
    outputs = score_study(demo_data.study_dir, results / "s1", make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None)))
    key = next(c.study_key for c in _candidates(demo_data.root) if "LESIONS" in c.description)
    (results / "worklist.csv").write_text("study_key,score,top_slice,series,status,output,notes\n"
                                          f"{key},{outputs.score},{outputs.top_slices[0]},CT,done,s1,\n"
                                          "broken,,,,failed,,no eligible series\n")
    dashboard_config(results=(results,))
    at = _app().run()
    assert at.selectbox(key="wl_pick").options[0].endswith("[Unread]")
    at.button(key="wl_open").click().run()
    assert not _problems(at)
    assert not any("source images" in w.value for w in at.warning)  # found under the data roots by study key
    assert at.session_state["view_state"]["z"] == outputs.top_slices[0]


def _one_scored_result(dashboard_config, demo_data, bank_for, tmp_path, tiny_options, **config_changes):
    """The lesion phantom scored into a batch result folder listed by the dashboard: (config, study key)."""
    config = dashboard_config()
    bank = bank_for(config)
    results = tmp_path / "batch"
    outputs = score_study(demo_data.study_dir, results / "s1", make_scorer(tiny_options.with_references(bank=str(bank)).with_slicing(window=None)))
    key = next(c.study_key for c in _candidates(demo_data.root) if "LESIONS" in c.description)
    (results / "worklist.csv").write_text("study_key,score,top_slice,series,status,output,notes\n"
                                          f"{key},{outputs.score},{outputs.top_slices[0]},CT,done,s1,\n")
    return dashboard_config(results=(results,), **config_changes), key


@pytest.mark.slow
def test_a_signed_decision_is_sent_to_the_pacs_with_the_reader_as_observer(dashboard_config, demo_data, bank_for, tmp_path,
                                                                           tiny_options):
    """Sign off, export, "Send to the PACS" (C-STORE to a real Orthanc): the PACS holds the reviewed
    SEG and SR, the SR's observer is the signed-in person, the send is audited."""

    import highdicom as hd
    import pydicom

    testbed = load_script("orthanc_testbed")
    if not testbed.orthanc_available():
        pytest.skip("Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)")
    with testbed.OrthancTestbed(tmp_path / "orthanc") as pacs:
        config, key = _one_scored_result(dashboard_config, demo_data, bank_for, tmp_path, tiny_options,
                                         send_to=f"dimse://TESTBED@127.0.0.1:{pacs.dicom_port}")
        at = _app().run()
        at.button(key="wl_open").click().run()
        at.button(key="decide_confirmed").click().run()
        at.text_area(key=f"so_notes_{key}").set_value("sent back to the PACS")
        at.button(key="sign").click().run()
        at.button(key="export").click().run()
        at.button(key="pacs_send_r1").click().run()
        assert not _problems(at) and any("2 object(s) sent to the PACS" in s.value for s in at.success)
        exported = config.output / "reviewed" / key
        sent = {pydicom.dcmread(exported / f"{key}_r1_{name}").SOPInstanceUID for name in ("reviewed_seg.dcm", "reviewed_sr.dcm")}
        stored = {pacs.get_json(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]: i for i in pacs.get_json("/instances")}
        assert sent <= set(stored)
        sr_uid = pydicom.dcmread(exported / f"{key}_r1_reviewed_sr.dcm").SOPInstanceUID
        import urllib.request

        with urllib.request.urlopen(f"{pacs.url}/instances/{stored[sr_uid]}/file", timeout=30) as response:
            (tmp_path / "from_pacs.dcm").write_bytes(response.read())
        (observer,) = hd.sr.srread(tmp_path / "from_pacs.dcm").content.get_observer_contexts()
        assert str(observer.observer_identifying_attributes.name) == f"{LOCAL_USER}^"
    store = ReviewStore.in_folder(config.output)
    (entry,) = [e for e in store.audit_trail(key) if e.action == "pacs_send"]
    assert entry.reviewer == LOCAL_USER and entry.after["protocol"] == "C-STORE" and entry.after["revision"] == 1
    assert store.verify().ok


def test_a_refused_concurrent_sign_off_keeps_only_the_readers_own_choice(dashboard_config, demo_data, bank_for, tmp_path,
                                                                       tiny_options):
    """The race: this reader (the local OS account) has a study open; another radiologist signs it
    off meanwhile.  The reader's sign-off is refused; the form keeps the reader's decision and notes
    (not the other's) and shows the other decision beside them; what is stored under the reader's
    name is only ever what the reader chose."""
    from adaptclip_med.review.access import READ, SIGN_OFF, Identity

    config, key = _one_scored_result(dashboard_config, demo_data, bank_for, tmp_path, tiny_options)
    at = _app().run()
    at.button(key="wl_open").click().run()  # the reader opens the study (revision 0)
    at.button(key="decide_confirmed").click().run()
    at.text_area(key=f"so_notes_{key}").set_value("my own reading: bleed").run()

    store = ReviewStore.in_folder(config.output)
    other = Identity("https://idp.test", "other-rad", "Dr Other", "", frozenset({READ, SIGN_OFF}))
    store.sign_off(key, "normal", other, "nothing there", expected_revision=0)  # meanwhile, elsewhere

    at.button(key="sign").click().run()
    assert any("signed off meanwhile" in e.value for e in at.error) and not at.exception
    assert store.review(key).reviewer == "Dr Other"  # refused: nothing of the reader's stored
    # the form still holds the reader's own choice and notes; the other decision is shown beside them
    assert at.session_state[f"so_decision_{key}"] == "confirmed"
    assert at.text_area(key=f"so_notes_{key}").value == "my own reading: bleed"
    shown = "\n".join(t.value for t in at.text)
    assert "Normal\nnothing there" in shown and "Confirmed anomaly\nmy own reading: bleed" in shown

    at.button(key="sign").click().run()  # a deliberate second click: an amendment with the reader's choice
    review = store.review(key)
    assert (review.decision, review.notes, review.reviewer, review.revision) == ("confirmed", "my own reading: bleed", LOCAL_USER, 2)
    for entry in store.audit_trail(key):  # under the reader's identity, only the reader's own decision
        if entry.reviewer == LOCAL_USER and entry.action in ("sign_off", "amend"):
            assert (entry.after["decision"], entry.after["notes"]) == ("confirmed", "my own reading: bleed")
    assert store.verify().ok


def test_without_weights_the_pages_say_so(dashboard_config, tiny_options):
    dashboard_config(model_configured=False)
    at = _app().run()
    assert any("no adapter weights configured" in w.value for w in at.sidebar.warning)
    _goto(at, "Reference library")
    at.button(key="lib_scan").click().run()
    assert at.button(key="build_bank").disabled and any("Cannot build banks" in w.value for w in at.warning)

    dashboard_config(scoring=tiny_options.with_model(weights="/nowhere/adapters.safetensors"))
    at = _app().run()
    assert any("model weights not available" in w.value and "does not exist" in w.value for w in at.sidebar.warning)
    assert not at.exception


def test_unreadable_results_give_a_clear_message(dashboard_config, tmp_path):
    results = tmp_path / "batch"
    study = results / "s1"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"score": 0.7, "top_slices": [{"index": 1}]}))
    (study / "anomaly_probability.nii.gz").write_bytes(b"garbage")
    dashboard_config(results=(results,))
    at = _app().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "results damaged: the anomaly map cannot be read" in table["action"].tolist()  # flagged, not offered to open
    assert table["rank"].tolist()[table["action"].tolist().index("results damaged: the anomaly map cannot be read")] == "—"
    assert not at.get("selectbox") or "s1" not in str(at.selectbox(key="wl_pick").options)


def test_missing_configuration_is_explained(monkeypatch):
    from adaptclip_med.review.config import CONFIG_ENV

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    at = _app().run()
    assert any("adaptclip-med dashboard --data-root" in e.value for e in at.error) and not at.exception


def test_a_folder_of_non_images_is_reported(dashboard_config, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_bytes(b"\0" * 200)
    shutil.copy(__file__, junk / "notes.txt")
    dashboard_config(data_roots=(junk,))
    at = _app().run()
    at.button(key="scan_roots").click().run()
    assert any("No readable image series" in w.value for w in at.warning) and not at.exception
