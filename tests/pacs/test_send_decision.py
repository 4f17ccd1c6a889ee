"""A signed decision (reviewed SEG + reviewed SR) goes to a real Orthanc by C-STORE and by STOW-RS,
and the send is in the audit trail under the person who asked; the role is checked first."""

from __future__ import annotations

import pydicom
import pytest

from adaptclip_med.review import guarded
from adaptclip_med.review.access import READ, SIGN_OFF, AccessDenied, Identity
from adaptclip_med.review.pacs_send import PacsDestination, PacsSendError
from adaptclip_med.review.store import ReviewStore

RADIOLOGIST = Identity("https://idp.test", "rad", "Dr Rad", "", frozenset({READ, SIGN_OFF}))
READER = Identity("https://idp.test", "reader", "Dr Reader", "", frozenset({READ}))


@pytest.fixture()
def decision_objects(tmp_path):
    """Two DICOM objects of one study, as a sign-off export writes them (SEG + SR classes)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    study = generate_uid()
    files = []
    for name, sop_class in (("seg.dcm", "1.2.840.10008.5.1.4.1.1.66.4"), ("sr.dcm", "1.2.840.10008.5.1.4.1.1.88.34")):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.PatientID, ds.Modality = "ANON", "SEG" if name == "seg.dcm" else "SR"
        ds.save_as(tmp_path / name, enforce_file_format=True)
        files.append(tmp_path / name)
    return files


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["C-STORE", "STOW-RS"])
def test_a_signed_decision_reaches_orthanc_and_is_audited(orthanc, tmp_path, decision_objects, protocol):
    store = ReviewStore.in_folder(tmp_path / "out")
    destination = (f"dimse://TESTBED@127.0.0.1:{orthanc.dicom_port}" if protocol == "C-STORE" else orthanc.dicomweb_url)
    assert guarded.send_to_pacs(RADIOLOGIST, store, "study-1", 1, decision_objects, destination) == 2
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in decision_objects}
    stored = {orthanc.get_json(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in orthanc.get_json("/instances")}
    assert uids <= stored
    (entry,) = [e for e in store.audit_trail("study-1") if e.action == "pacs_send"]
    assert entry.reviewer_id == "https://idp.test#rad" and entry.after["protocol"] == protocol
    assert entry.after["accepted"] == 2 and entry.after["files"] == ["seg.dcm", "sr.dcm"]
    assert store.verify().ok


def test_only_the_sign_off_role_may_send_and_failures_are_one_audited_line(tmp_path, decision_objects):
    store = ReviewStore.in_folder(tmp_path / "out")
    with pytest.raises(AccessDenied, match="may not sign off"):
        guarded.send_to_pacs(READER, store, "study-1", 1, decision_objects, "dimse://PACS@127.0.0.1:9")
    assert store.audit_trail() == []
    with pytest.raises(PacsSendError, match=r"dimse://PACS@127.0.0.1:9: association refused or PACS unreachable"):
        guarded.send_to_pacs(RADIOLOGIST, store, "study-1", 1, decision_objects, "dimse://PACS@127.0.0.1:9")
    assert [e.action for e in store.audit_trail("study-1")] == ["pacs_send_failed"]


@pytest.mark.parametrize("text", ["ftp://x", "dimse://127.0.0.1:104", "dimse://WAY_TOO_LONG_AE_TITLE@h:104"])
def test_bad_destinations_are_refused_in_one_line(text):
    from adaptclip_med.errors import InputError

    with pytest.raises(InputError, match="--send-to"):
        PacsDestination.parse(text)
