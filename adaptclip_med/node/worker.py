"""The node's work loop: complete studies after the quiet period, score each once, send its results.

Scoring goes through batch's single-study path (:class:`~adaptclip_med.batch.worker.StudyWorker`,
which calls :func:`~adaptclip_med.volume.study_run.run_study`): the same series choice,
staging, atomic publishing, one-line failure reasons and outputs as ``adaptclip-med batch``; the
spool is just another :class:`~adaptclip_med.batch.worker.StudySource`.  Results land in
``<state_dir>/results/<key>`` and EVERY DICOM object the study writers produced there is sent,
whichever writers the scoring options switched on.

Each step is one state change in the store, committed before and after the work, so a killed node
resumes where it was (see :mod:`adaptclip_med.node.store`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.batch.discovery import StudyFiles, StudyTask
from adaptclip_med.batch.journal import DONE
from adaptclip_med.batch.rules import SeriesRules
from adaptclip_med.batch.staging import reset_scratch, reset_staging
from adaptclip_med.batch.worker import BatchOptions, DiskFullError, StudyWorker
from adaptclip_med.node.config import NodeConfig
from adaptclip_med.node.sender import SendError, send_files
from adaptclip_med.node.spool import Spool
from adaptclip_med.node.store import FAILED, QUEUED, SCORED, SCORING, SENDING, SENT, NodeStore
from adaptclip_med.outputs import layout
from adaptclip_med.utils.keys import key_path
from adaptclip_med.volume.options import OutputOptions
from adaptclip_med.volume.scoring import VolumeScorer

log = logging.getLogger(__name__)

_DICM_OFFSET = 128


def is_dicom_file(path: Path) -> bool:
    """A Part-10 file (preamble + 'DICM'), whatever its name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_DICM_OFFSET + 4)
    except OSError:
        return False
    return len(head) == _DICM_OFFSET + 4 and head[_DICM_OFFSET:] == b"DICM"


def result_objects(folder: Path) -> list[Path]:
    """Every DICOM object a study run wrote into ``folder``: the known results first, in
    :data:`layout.DICOM_RESULTS` order (SEG before the objects that reference it), then any other."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    known = [folder / name for name in layout.DICOM_RESULTS if (folder / name).is_file()]
    others = sorted(p for p in folder.iterdir() if p.is_file() and p not in known and not p.name.startswith(".")
                    and is_dicom_file(p))
    return known + others


class SpoolSource:
    """The spool as batch's :class:`StudySource`: a study's files are its spooled instances."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def discover(self):  # pragma: no cover - the node hands tasks over one by one
        raise NotImplementedError("the node queues studies itself")

    def open_study(self, task: StudyTask, scratch: Path, rules: SeriesRules) -> StudyFiles:
        return StudyFiles(self.spool.files(task.key), self.spool.root)


@dataclass
class NodeWorker:
    config: NodeConfig
    store: NodeStore
    spool: Spool
    scorer: VolumeScorer
    outputs: OutputOptions
    results_dir: Path

    def __post_init__(self) -> None:
        self.results_dir = Path(self.results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        options = BatchOptions(out_dir=self.results_dir, rules=SeriesRules(modalities=self.config.modalities),
                               scratch_dir=reset_scratch(self.results_dir, None, 0))
        self._study_worker = StudyWorker(SpoolSource(self.spool), self.scorer, options, self.outputs,
                                         reset_staging(self.results_dir, 0))

    def results_folder(self, key: str) -> Path:
        return key_path(self.results_dir, key)

    def step(self) -> bool:
        """Do the next piece of work, if any: complete quiet studies, score one, send one.
        Returns True when something was scored or sent (call again at once)."""
        for key in self.store.queue_quiet_studies(self.config.quiet_seconds):
            log.info("study %s: complete (nothing received for %.0f s), queued", key, self.config.quiet_seconds)
        key = self.store.claim(QUEUED, SCORING, "score_attempts")
        if key is not None:
            self.score(key)
            return True
        if self.config.destination is not None:
            key = self.store.claim(SCORED, SENDING, "send_attempts")
            if key is not None:
                self.send(key)
                return True
        return False

    # ------------------------------------------------------------------------------ scoring
    def score(self, key: str) -> None:
        """Score a claimed study once: results already published before a restart are kept."""
        if (self.results_folder(key) / layout.STUDY_JSON).is_file():
            log.info("study %s: results already on disk from before a restart; not scored again", key)
            self.store.set_state(key, SCORED, error="", from_states=(SCORING,))
            return
        files = self.spool.files(key)
        task = StudyTask(key, tuple(str(p) for p in files), study_uid=self.store.study_uid(key))
        log.info("study %s: scoring %d instance(s)", key, len(files))
        try:
            record = self._study_worker.run(task)
        except DiskFullError as exc:
            self.store.set_state(key, FAILED, error=str(exc), from_states=(SCORING,))
            log.error("study %s failed: %s", key, exc)
            return
        if record.status == DONE:
            self.store.set_state(key, SCORED, error="", score=record.score, from_states=(SCORING,))
            log.info("study %s: scored %.4f in %.1f s", key, record.score, record.seconds)
        else:
            self.store.set_state(key, FAILED, error=record.reason, from_states=(SCORING,))
            log.warning("study %s failed: %s", key, record.reason)

    # ------------------------------------------------------------------------------ sending
    def send(self, key: str) -> None:
        """Send a scored study's result objects; on failure retry later with doubling delays,
        then ``failed`` after the destination's last attempt."""
        destination = self.config.destination
        assert destination is not None
        files = result_objects(self.results_folder(key))
        row = self.store.row(key)
        attempt = row.send_attempts if row else 1
        try:
            sent = send_files(files, destination, self.config.ae_title)
        except (SendError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if attempt >= destination.attempts:
                self.store.set_state(key, FAILED, error=f"results not sent after {attempt} attempt(s): {reason}",
                                     from_states=(SENDING,))
                log.error("study %s: results not sent after %d attempt(s): %s", key, attempt, reason)
            else:
                delay = destination.backoff_seconds * 2 ** (attempt - 1)
                self.store.set_state(key, SCORED, error=reason, from_states=(SENDING,), retry_in=delay)
                log.warning("study %s: sending failed (attempt %d of %d, next in %.0f s): %s", key, attempt,
                            destination.attempts, delay, reason)
            return
        self.store.set_state(key, SENT, error="", sent_objects=sent, from_states=(SENDING,))
        log.info("study %s: %d result object(s) sent to %s", key, sent, destination.peer.ae_title)

