"""Helpers for the node tests: a node configuration wired to the tiny model, a pynetdicom SCU send,
and a pynetdicom Storage SCP standing in for the destination PACS (Orthanc itself is in tests/pacs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from adaptclip_med.node.config import Destination, NodeConfig, Peer

from tests.support.tiny_models import TINY_OPTIONS

SCANNER = "SCANNER"
TINY_SCORING = {**TINY_OPTIONS, "adapters": "untrained", "zero_shot": True}


@dataclass
class CollectingPacs:
    """A Storage SCP that keeps every dataset it is sent (the destination in unit tests)."""

    ae_title: str = "PACS"
    received: list = field(default_factory=list)
    port: int = 0
    _server: object = None

    def start(self) -> "CollectingPacs":
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        lock = threading.Lock()

        def on_store(event):
            ds = event.dataset
            ds.file_meta = event.file_meta
            with lock:
                self.received.append(ds)
            return 0x0000

        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def destination(self, attempts: int = 2, backoff: float = 0.0) -> Destination:
        return Destination(Peer(self.ae_title, "127.0.0.1", self.port), attempts=attempts, backoff_seconds=backoff,
                           timeout_seconds=10)


def node_config(state_dir: Path, destination: Destination | None = None, **changes) -> NodeConfig:
    settings = dict(ae_title="AINODE", bind="127.0.0.1", port=0, state_dir=state_dir,
                    allow=(Peer(SCANNER, "127.0.0.1"),), destination=destination, quiet_seconds=0.0,
                    poll_seconds=0.05, scoring=dict(TINY_SCORING))
    settings.update(changes)
    return NodeConfig(**settings)


def send(files, port: int, calling: str = SCANNER, called: str = "AINODE") -> int:
    """C-STORE ``files`` to a node on loopback as ``calling`` (pynetdicom SCU, the node's sender)."""
    from adaptclip_med.node.sender import send_files

    return send_files(list(files), Destination(Peer(called, "127.0.0.1", port), attempts=1, timeout_seconds=10), calling)
