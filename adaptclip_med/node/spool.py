"""Received instances on disk: ``<state_dir>/spool/<study key>/<instance key>.dcm``.

Each instance is written to a temporary name, fsynced and renamed (:func:`atomic_write_bytes`)
BEFORE the queue records it and BEFORE the sender hears "success", so a SIGKILL at any instant
leaves either the whole file or nothing, and an instance acknowledged to the PACS is always on
disk.  Names are the store's salted pseudonymous keys, never UIDs.  An instance written but not
yet recorded when the node died is found again by :meth:`Spool.reconcile` at start-up.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom

from adaptclip_med.node.store import NodeStore
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.utils.keys import key_path

log = logging.getLogger(__name__)

SUFFIX = ".dcm"


class Spool:
    def __init__(self, root: Path, store: NodeStore) -> None:
        self.root = Path(root)
        self.store = store
        self.root.mkdir(parents=True, exist_ok=True)

    def study_folder(self, study_key: str) -> Path:
        return key_path(self.root, study_key)

    def files(self, study_key: str) -> list[Path]:
        """The study's instances on disk (temporary files of an interrupted write excluded)."""
        folder = self.study_folder(study_key)
        return sorted(p for p in folder.glob(f"*{SUFFIX}") if not p.name.startswith(".")) if folder.is_dir() else []

    def store_instance(self, encoded: bytes, study_uid: str, sop_instance_uid: str):
        """Write one Part-10 encoded instance, then record it; returns the store's :class:`Arrival`."""
        study_key, instance_key = self.store.study_key(study_uid), self.store.instance_key(sop_instance_uid)
        atomic_write_bytes(self.study_folder(study_key) / f"{instance_key}{SUFFIX}", encoded)
        return self.store.record_instance(study_uid, sop_instance_uid)

    def reconcile(self) -> int:
        """Record spooled files the queue does not know (the node died between writing and
        recording); returns how many.  Leftover temporary files of interrupted writes are removed."""
        found = 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for leftover in folder.glob(".tmp-*"):
                leftover.unlink(missing_ok=True)
            known = self.store.instance_keys(folder.name)
            for path in sorted(folder.glob(f"*{SUFFIX}")):
                if path.stem in known:
                    continue
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
                    study_uid, sop_uid = str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)
                except Exception as exc:  # a file we wrote but cannot read back: leave it, say so
                    log.warning("spool file %s/%s unreadable (%s); left in place", folder.name, path.name, type(exc).__name__)
                    continue
                if self.store.study_key(study_uid) != folder.name or self.store.instance_key(sop_uid) != path.stem:
                    log.warning("spool file %s/%s does not belong where it lies; left in place", folder.name, path.name)
                    continue
                self.store.record_instance(study_uid, sop_uid)
                found += 1
        if found:
            log.info("recovered %d spooled instance(s) received just before the node stopped", found)
        return found
