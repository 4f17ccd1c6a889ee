"""The node's SCP with a real pynetdicom SCU: allow-list at association, atomic spool under
pseudonymous names, result objects and other modalities acknowledged but never kept."""

from __future__ import annotations

import os

import pydicom
import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from adaptclip_med.node.receiver import Receiver, skip_reason
from adaptclip_med.node.sender import SendError
from adaptclip_med.node.spool import Spool
from adaptclip_med.node.store import NodeStore

from tests.support.dicom_studies import PATIENT_ID, PATIENT_NAME, ct_series, sr_document
from node_helpers import node_config, send


@pytest.fixture()
def node(tmp_path):
    config = node_config(tmp_path / "state")
    with NodeStore(config.state_dir) as store:
        receiver = Receiver(config, Spool(config.state_dir / "spool", store))
        receiver.start()
        yield receiver, store
        receiver.stop()


def test_an_allowed_scanner_stores_a_study_into_the_spool_under_pseudonymous_names(tmp_path, node):
    receiver, store = node
    uid = generate_uid()
    files = ct_series(tmp_path / "src", uid, slices=4)
    assert send(files, receiver.port) == 4
    key = store.study_key(uid)
    assert store.row(key).instances == 4 and store.row(key).state == "receiving"
    spooled = receiver.spool.files(key)
    assert len(spooled) == 4
    for path in receiver.spool.root.rglob("*"):  # no UID, name or ID in any file or folder name
        assert not any(secret in str(path) for secret in (uid, PATIENT_NAME, PATIENT_ID, "1.2.826"))
    original = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p).PixelData for p in files}
    for path in spooled:  # whole Part-10 files, pixels intact
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID and ds.PixelData == original[ds.SOPInstanceUID]
    assert not [p for p in receiver.spool.root.rglob(".tmp-*")]


def test_an_unknown_ae_title_or_host_is_refused_at_association(tmp_path, node):
    receiver, store = node
    files = ct_series(tmp_path / "src", generate_uid(), slices=2)
    with pytest.raises(SendError, match="rejected the association"):
        send(files, receiver.port, calling="INTRUDER")
    assert receiver.refused == 1 and store.rows() == []
    from adaptclip_med.node.config import Peer

    receiver.allow = type(receiver.allow).from_peers((Peer("SCANNER", "10.9.8.7"),))  # right AE, wrong host
    with pytest.raises(SendError, match="rejected the association"):
        send(files, receiver.port)
    assert store.rows() == []


def test_verification_answers(node):
    receiver, _ = node
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="AINODE")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_results_and_other_modalities_are_acknowledged_but_never_spooled(tmp_path, node):
    receiver, store = node
    uid = generate_uid()
    sr = sr_document(tmp_path / "src" / "sr.dcm", uid)
    us = ct_series(tmp_path / "us", uid, slices=1, modality="US")
    assert send([sr, *us], receiver.port) == 2  # acknowledged: the PACS sees no error
    assert store.rows() == [] and not any(receiver.spool.root.iterdir())
    assert set(store.skipped()) == {"derived SR object (results are never scored)",
                                    "modality US not scored (node modalities: CT, MR)"}


def test_skip_reasons():
    ct = pydicom.Dataset()
    ct.Modality = "CT"
    assert skip_reason("1.2.840.10008.5.1.4.1.1.2", ct, ("CT", "MR")) is None
    assert "SEG" in skip_reason("1.2.840.10008.5.1.4.1.1.66.4", ct, ("CT",))
    assert "KO" in skip_reason("1.2.840.10008.5.1.4.1.1.88.59", ct, ("CT",))
    assert "PMAP" in skip_reason("1.2.840.10008.5.1.4.1.1.30", ct, ("CT",))
    ours = pydicom.Dataset()
    ours.Modality = "CT"
    item = pydicom.Dataset()
    item.Manufacturer = "adaptclip-med"
    ours.ContributingEquipmentSequence = [item]
    assert "made by adaptclip-med" in skip_reason("1.2.840.10008.5.1.4.1.1.2", ours, ("CT",))


def test_an_instance_written_but_not_recorded_before_a_kill_is_recovered(tmp_path):
    config = node_config(tmp_path / "state")
    uid = generate_uid()
    files = ct_series(tmp_path / "src", uid, slices=2)
    with NodeStore(config.state_dir) as store:
        spool = Spool(config.state_dir / "spool", store)
        ds = pydicom.dcmread(files[0])
        folder = spool.study_folder(store.study_key(uid))
        folder.mkdir(parents=True)
        (folder / f"{store.instance_key(ds.SOPInstanceUID)}.dcm").write_bytes(files[0].read_bytes())
        (folder / ".tmp-1234.half.dcm").write_bytes(b"partial")  # an interrupted write
        assert store.rows() == []
        assert spool.reconcile() == 1
        assert store.row(store.study_key(uid)).instances == 1
        assert not (folder / ".tmp-1234.half.dcm").exists()
        assert os.listdir(folder) == [f"{store.instance_key(ds.SOPInstanceUID)}.dcm"]


def test_a_port_in_use_is_a_one_line_error(tmp_path, node):
    receiver, store = node
    from adaptclip_med.errors import AdaptClipError

    taken = node_config(tmp_path / "other", port=receiver.port)
    with pytest.raises(AdaptClipError, match=f"cannot listen on 127.0.0.1:{receiver.port}"):
        Receiver(taken, receiver.spool).start()
