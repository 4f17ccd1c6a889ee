"""The node's DICOM Storage SCP (pynetdicom): every storage SOP class plus Verification.

Who may send: an association is refused unless its calling AE title AND the peer's address match
an ``[[allow]]`` entry (A-ASSOCIATE-RJ "calling AE title not recognised", sent from the
``EVT_REQUESTED`` handler, so nothing is ever received from anyone else).

What is kept: CT/MR images (the configured modalities), written as received: pynetdicom's
``encoded_dataset()`` is the peer's bytes behind a File Meta Information built from the association
(the same result as ``ds.file_meta = event.file_meta; ds.save_as(...)`` without decoding and
re-encoding every pixel), so the spool is a faithful Part-10 copy.  Result objects coming back - SEG, SR,
KO, Parametric Maps, anything listing this software in its Contributing Equipment - are acknowledged but never spooled, so a
PACS that routes them to us cannot start a loop; other modalities likewise.  Every skip is logged
with its reason and counted in the store; no log line carries an identifier.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.node.config import NodeConfig, Peer
from adaptclip_med.node.spool import Spool
from adaptclip_med.outputs.equipment import MANUFACTURER

log = logging.getLogger(__name__)

SUCCESS = 0x0000
#: Out of resources - the instance could not be written (the sender may retry).
OUT_OF_RESOURCES = 0xA700
#: Cannot understand (no SOP Instance / Study UID).
CANNOT_UNDERSTAND = 0xC000

#: Result and document SOP classes: never scored, whatever their Modality says.
RESULT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "SEG",   # Segmentation
    "1.2.840.10008.5.1.4.1.1.30": "PMAP",    # Parametric Map
    "1.2.840.10008.5.1.4.1.1.88.59": "KO",   # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.104.1": "DOC",  # Encapsulated PDF
}
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # every Structured Report class
#: Modalities of result objects (a PACS may send them under any SOP class).
RESULT_MODALITIES = {"SEG", "SR", "KO", "PR", "DOC", "RWV", "REG"}


def skip_reason(sop_class_uid: str, ds: Dataset, modalities: tuple[str, ...]) -> str | None:
    """Why an incoming instance is not kept (a fixed phrase, no identifier), or None to keep it."""
    if sop_class_uid in RESULT_SOP_CLASSES or sop_class_uid.startswith(_SR_PREFIX):
        kind = RESULT_SOP_CLASSES.get(sop_class_uid, "SR")
        return f"derived {kind} object (results are never scored)"
    if any(str(item.get("Manufacturer", "")).strip() == MANUFACTURER for item in ds.get("ContributingEquipmentSequence", [])):
        return "made by adaptclip-med (results are never scored)"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality in RESULT_MODALITIES:
        return f"derived {modality} object (results are never scored)"
    if modality not in modalities:
        return f"modality {modality or 'missing'} not scored (node modalities: {', '.join(modalities)})"
    return None


def _addresses(host: str) -> set[str]:
    """A configured host as the addresses a peer can come from (names resolved once, at start)."""
    try:
        return {host} | set(socket.gethostbyname_ex(host)[2])
    except OSError:
        return {host}


@dataclass(frozen=True)
class AllowList:
    """(AE title, address) pairs that may associate; empty: nobody."""

    entries: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def from_peers(cls, peers: tuple[Peer, ...]) -> AllowList:
        return cls(tuple((p.ae_title.strip(), frozenset(_addresses(p.host))) for p in peers))

    def allows(self, ae_title: str, address: str) -> bool:
        title = ae_title.strip()
        return any(title == allowed and address in hosts for allowed, hosts in self.entries)


class Receiver:
    """The SCP: :meth:`start` listens (non-blocking, one thread per association), :meth:`stop` closes."""

    def __init__(self, config: NodeConfig, spool: Spool) -> None:
        self.config = config
        self.spool = spool
        self.allow = AllowList.from_peers(config.allow)
        self.ae = AE(ae_title=config.ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.add_supported_context(Verification)
        self.ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs for big images
        self._server = None
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Listen on the configured address (port 0: a free one); returns the port."""
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_C_ECHO, lambda event: SUCCESS)]
        try:
            self._server = self.ae.start_server((self.config.bind, self.config.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise AdaptClipError(f"cannot listen on {self.config.bind}:{self.config.port} "
                                 f"({exc.strerror or type(exc).__name__}): another program uses the port, or the "
                                 f"address is not this machine's; change [node].port/bind or --port/--bind") from None
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # ------------------------------------------------------------------------------ handlers
    def _on_requested(self, event) -> None:
        requestor = event.assoc.requestor
        calling = str(requestor.primitive.calling_ae_title).strip()
        if self.allow.allows(calling, requestor.address):
            return
        with self._lock:
            self.refused += 1
        # the AE title of a stranger is not an identifier of a patient, but keep it short
        log.warning("refused an association from AE '%s' at %s (not in the allow-list)", calling[:16], requestor.address)
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # rejected-permanent, user, calling AE not recognised
        event.assoc.kill()  # waits until the rejection has gone out, then ends the association thread

    def _on_store(self, event) -> int:
        try:
            ds = event.dataset
            sop_class = str(event.request.AffectedSOPClassUID)
            study_uid, sop_uid = str(ds.get("StudyInstanceUID", "")), str(event.request.AffectedSOPInstanceUID)
        except Exception as exc:  # a dataset pydicom cannot decode
            log.warning("an incoming instance could not be decoded (%s); refused", type(exc).__name__)
            return CANNOT_UNDERSTAND
        reason = skip_reason(sop_class, ds, self.config.modalities)
        if reason is not None:
            log.info("skipped an incoming instance: %s", reason)
            self.spool.store.count_skipped(reason)
            return SUCCESS
        if not study_uid or not sop_uid:
            log.warning("an incoming instance has no Study or SOP Instance UID; refused")
            return CANNOT_UNDERSTAND
        try:
            arrival = self.spool.store_instance(event.encoded_dataset(include_meta=True), study_uid, sop_uid)
        except Exception as exc:  # disk full, read-only spool: the sender keeps the instance and retries
            log.error("could not spool an instance (%s); answered 'out of resources'", str(exc).splitlines()[0][:200])
            return OUT_OF_RESOURCES
        if arrival.late:
            log.warning("study %s: an instance arrived after the study was complete; kept in the spool, not rescored",
                        arrival.study_key)
        return SUCCESS
