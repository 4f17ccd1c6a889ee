"""Running the node: fail fast on the model, recover the queue, listen, work, stop cleanly.

Order matters: the scorer is built first, so missing weights or a bank built by another model is a
one-line error before the node accepts anything; then the spool is reconciled and interrupted
studies recovered; only then does the SCP listen.  SIGTERM or SIGINT closes the listener at once
(no new association) and lets the study in hand finish its current step; the queue records where
everything is, so the next start carries on.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.node.config import NodeConfig
from adaptclip_med.node.receiver import Receiver
from adaptclip_med.node.spool import Spool
from adaptclip_med.node.store import NodeStore
from adaptclip_med.node.worker import NodeWorker
from adaptclip_med.utils.atomic import ensure_writable_folder
from adaptclip_med.utils.redact import describe_path, header_warnings_silenced

log = logging.getLogger(__name__)

SPOOL_DIR = "spool"
RESULTS_DIR = "results"


def state_paths(state_dir: Path) -> dict[str, Path]:
    return {"spool": Path(state_dir) / SPOOL_DIR, "results": Path(state_dir) / RESULTS_DIR}


@dataclass
class NodeService:
    """``NodeService(config).run()`` blocks until :meth:`stop` (or a signal)."""

    config: NodeConfig
    stop_event: threading.Event = field(default_factory=threading.Event)
    receiver: Receiver | None = None

    def run(self, on_ready: Callable[[int], None] | None = None, handle_signals: bool = True) -> None:
        from adaptclip_med.volume.pipeline import make_scorer

        config = self.config
        # pynetdicom logs every request at INFO and dumps PDUs (UIDs included) at DEBUG: our own lines say what matters
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        scoring = config.scoring_options()
        scorer = make_scorer(scoring)  # one-line error (weights, bank) before anything listens
        ensure_writable_folder(Path(config.state_dir), "node state folder")
        paths = state_paths(config.state_dir)
        with NodeStore(config.state_dir) as store:
            spool = Spool(paths["spool"], store)
            spool.reconcile()
            recovered = store.recover(config.score_attempts)
            if any(recovered.values()):
                log.info("after a restart: %d study(ies) queued again for scoring, %d to send again, %d given up",
                         recovered["requeued"], recovered["resend"], recovered["gave_up"])
            worker = NodeWorker(config, store, spool, scorer, scoring.output, paths["results"])
            self.receiver = Receiver(config, spool)
            port = self.receiver.start()
            if handle_signals:
                self._install_signal_handlers()
            log.info("node %s listening on %s:%d (%d allowed peer(s); results to %s)", config.ae_title, config.bind,
                     port, len(config.allow),
                     config.destination.peer.ae_title if config.destination else "nowhere: no [destination]")
            if on_ready is not None:
                on_ready(port)
            try:
                with header_warnings_silenced():
                    while not self.stop_event.is_set():
                        if not worker.step():
                            self.stop_event.wait(config.poll_seconds)
            except sqlite3.Error as exc:  # the queue itself failed (disk, permissions): stop, the state is kept
                raise AdaptClipError(f"{describe_path(store.path)}: the node's queue database failed "
                                     f"({str(exc).splitlines()[0]}); fix it and start the node again") from exc
            finally:
                self._close_receiver()
        log.info("node %s stopped", config.ae_title)

    def stop(self) -> None:
        """Stop accepting associations now; the loop ends after its current step."""
        self.stop_event.set()
        threading.Thread(target=self._close_receiver, daemon=True).start()

    def _close_receiver(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()

    def _install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
