"""Sending the signed decision (reviewed SEG + reviewed SR) back to the PACS: C-STORE or STOW-RS.

The destination is configured once for the dashboard (``--send-to``):

* ``dimse://CALLED_AE@host:port`` (optionally ``?calling=OUR_AE``): DICOM C-STORE (pynetdicom);
* ``http(s)://host/dicom-web``: DICOMweb STOW-RS (dicomweb-client).

Every failure is one line naming the destination (never a patient identifier); the caller records
the send in the audit trail under the person who asked for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from adaptclip_med.errors import InputError

DEFAULT_CALLING_AE = "ADAPTCLIP"


class PacsSendError(InputError):
    """The PACS did not accept the objects (or could not be reached)."""


@dataclass(frozen=True)
class PacsDestination:
    kind: str  # "dimse" | "stow"
    url: str = ""  # STOW: the DICOMweb root
    host: str = ""
    port: int = 0
    called_ae: str = ""
    calling_ae: str = DEFAULT_CALLING_AE

    @classmethod
    def parse(cls, text: str) -> "PacsDestination":
        """``dimse://AE@host:port[?calling=AE]`` or a DICOMweb ``http(s)://`` root."""
        parsed = urlparse(text.strip())
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return cls("stow", url=text.strip().rstrip("/"))
        if parsed.scheme == "dimse" and parsed.hostname and parsed.port and parsed.username:
            calling = (parse_qs(parsed.query).get("calling") or [DEFAULT_CALLING_AE])[0]
            for title in (parsed.username, calling):
                if not 0 < len(title) <= 16:
                    raise InputError(f"--send-to {text}: an AE title has 1 to 16 characters")
            return cls("dimse", host=parsed.hostname, port=int(parsed.port), called_ae=parsed.username, calling_ae=calling)
        raise InputError(f"--send-to {text}: expected dimse://CALLED_AE@host:port or an http(s):// DICOMweb root")

    def describe(self) -> str:
        """For messages and the audit trail (no credentials: none are part of the syntax)."""
        return self.url if self.kind == "stow" else f"dimse://{self.called_ae}@{self.host}:{self.port}"


def send(files: list[Path], destination: PacsDestination, timeout: float = 30.0) -> int:
    """Send ``files`` (DICOM Part 10) to ``destination``; returns how many were accepted."""
    if not files:
        return 0
    return _stow(files, destination, timeout) if destination.kind == "stow" else _c_store(files, destination, timeout)


def _c_store(files: list[Path], destination: PacsDestination, timeout: float) -> int:
    import pydicom
    from pynetdicom import AE

    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # it logs identifiers of the objects
    datasets = [pydicom.dcmread(path) for path in files]
    ae = AE(ae_title=destination.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for dataset in datasets:
        ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    association = ae.associate(destination.host, destination.port, ae_title=destination.called_ae)
    if not association.is_established:
        raise PacsSendError(f"{destination.describe()}: association refused or PACS unreachable")
    accepted = 0
    try:
        for index, dataset in enumerate(datasets, start=1):
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or success with a warning
                raise PacsSendError(f"{destination.describe()}: C-STORE of object {index} of {len(datasets)} refused "
                                    f"(status {'none' if code is None else hex(code)})")
            accepted += 1
    finally:
        association.release()
    return accepted


def _stow(files: list[Path], destination: PacsDestination, timeout: float) -> int:
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    logging.getLogger("dicomweb_client").setLevel(logging.CRITICAL)
    datasets = [pydicom.dcmread(path) for path in files]
    client = DICOMwebClient(destination.url, timeout=timeout)
    try:
        response = client.store_instances(datasets)
    except Exception as exc:  # HTTP errors, refused connections: one line, no identifiers
        raise PacsSendError(f"{destination.describe()}: STOW-RS failed ({type(exc).__name__})") from None
    refused = len(getattr(response, "FailedSOPSequence", []) or [])
    if refused:
        raise PacsSendError(f"{destination.describe()}: the PACS refused {refused} of {len(datasets)} object(s)")
    return len(datasets)
