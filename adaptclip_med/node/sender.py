"""Storing result objects at the destination by C-STORE (pynetdicom SCU), one association per study.

Each file is proposed with its own SOP class and transfer syntax (plus Explicit/Implicit VR Little
Endian), so a Comprehensive 3D SR or a Parametric Map needs no special set-up on the PACS side.  A
failed association, a refused context or a non-success status is a :class:`SendError` whose one
line says which object kind failed and why; the worker decides about retries.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
from pynetdicom import AE
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.node.config import Destination

log = logging.getLogger(__name__)

#: C-STORE statuses that mean "stored": success and the warnings (coercion, elements discarded).
STORED = {0x0000, 0xB000, 0xB007, 0xB006}


class SendError(AdaptClipError):
    """The results could not be stored at the destination (one line, no identifiers)."""


def _kind(ds) -> str:
    return str(ds.get("Modality", "")).strip() or "object"


def send_files(files: list[Path], destination: Destination, calling_ae_title: str) -> int:
    """C-STORE every file on one association; returns how many were stored."""
    if not files:
        return 0
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = destination.timeout_seconds
    for sop_class, syntax in sorted({(str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in headers}):
        ae.add_requested_context(sop_class, list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian])))
    peer = destination.peer
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        what = "rejected the association" if assoc.is_rejected else "did not answer"
        raise SendError(f"destination {peer.ae_title} at {peer.host}:{peer.port} {what}")
    stored = 0
    try:
        for path, header in zip(files, headers):
            try:
                status = assoc.send_c_store(path)
            except ValueError as exc:  # no accepted context for this SOP class / transfer syntax
                raise SendError(f"destination {peer.ae_title} does not accept {_kind(header)} objects "
                                f"({str(exc).splitlines()[0][:120]})") from None
            code = int(getattr(status, "Status", -1)) if status else -1
            if code not in STORED:
                reason = "no answer" if code == -1 else f"status 0x{code:04X}"
                raise SendError(f"destination {peer.ae_title} did not store a {_kind(header)} object ({reason})")
            stored += 1
    finally:
        if assoc.is_established:
            assoc.release()
    return stored
