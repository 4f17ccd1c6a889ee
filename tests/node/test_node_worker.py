"""The whole node in one process with the tiny model: studies in by C-STORE, each scored once
through batch's StudyWorker, every result object sent once, retries, a clear failed state, and
the service started and stopped as ``node run`` does it."""

from __future__ import annotations

import threading
import time

import pydicom
from pydicom.uid import generate_uid

from adaptclip_med.node.config import Destination, Peer
from adaptclip_med.node.receiver import Receiver
from adaptclip_med.node.service import NodeService, state_paths
from adaptclip_med.node.spool import Spool
from adaptclip_med.node.store import FAILED, SCORED, SENT, NodeStore
from adaptclip_med.node.worker import NodeWorker, result_objects
from adaptclip_med.volume.pipeline import make_scorer

from tests.support.dicom_studies import ct_series
from node_helpers import node_config, send


def make_worker(config, store):
    scoring = config.scoring_options()
    paths = state_paths(config.state_dir)
    spool = Spool(paths["spool"], store)
    return NodeWorker(config, store, spool, make_scorer(scoring), scoring.output, paths["results"]), spool


def run_until_idle(worker, limit: int = 10) -> int:
    steps = 0
    while worker.step() and steps < limit:
        steps += 1
    return steps


def test_a_study_is_scored_once_and_every_result_object_sent_once(tmp_path, pacs):
    config = node_config(tmp_path / "state", pacs.destination(), scoring={**node_config(tmp_path).scoring,
                                                                          "parametric_map": True})
    uid = generate_uid()
    with NodeStore(config.state_dir) as store:
        worker, spool = make_worker(config, store)
        receiver = Receiver(config, spool)
        receiver.start()
        try:
            send(ct_series(tmp_path / "src", uid), receiver.port)
        finally:
            receiver.stop()
        assert run_until_idle(worker) == 2  # one scoring step, one sending step
        key = store.study_key(uid)
        row = store.row(key)
        assert (row.state, row.score_attempts, row.send_attempts, row.sent_objects) == (SENT, 1, 1, 4)
        assert run_until_idle(worker) == 0  # nothing left: never scored or sent twice
        classes = sorted(ds.SOPClassUID.name for ds in pacs.received)
        assert classes == ["Comprehensive 3D SR Storage", "Key Object Selection Document Storage", "Parametric Map Storage",
                           "Segmentation Storage"]
        assert {str(ds.StudyInstanceUID) for ds in pacs.received} == {uid}  # back into the same study
        sent_files = result_objects(worker.results_folder(key))
        assert {pydicom.dcmread(p).SOPInstanceUID for p in sent_files} == {ds.SOPInstanceUID for ds in pacs.received}


def test_results_are_retried_then_the_study_is_failed_with_the_reason(tmp_path):
    unreachable = Destination(Peer("PACS", "127.0.0.1", 9), attempts=2, backoff_seconds=0.0, timeout_seconds=2)
    config = node_config(tmp_path / "state", unreachable)
    uid = generate_uid()
    with NodeStore(config.state_dir) as store:
        worker, spool = make_worker(config, store)
        for path in ct_series(tmp_path / "src", uid):
            ds = pydicom.dcmread(path)
            spool.store_instance(path.read_bytes(), uid, ds.SOPInstanceUID)
        run_until_idle(worker)
        row = store.row(store.study_key(uid))
        assert (row.state, row.score_attempts, row.send_attempts) == (FAILED, 1, 2)
        assert row.last_error.startswith("results not sent after 2 attempt(s): destination PACS") and uid not in row.last_error


def test_a_study_without_a_usable_series_fails_with_a_one_line_reason(tmp_path):
    config = node_config(tmp_path / "state")
    uid = generate_uid()
    with NodeStore(config.state_dir) as store:
        worker, spool = make_worker(config, store)
        path = ct_series(tmp_path / "src", uid, slices=1)[0]
        spool.store_instance(b"not dicom at all", uid, pydicom.dcmread(path).SOPInstanceUID)
        run_until_idle(worker)
        row = store.row(store.study_key(uid))
        assert row.state == FAILED and row.last_error and "\n" not in row.last_error


def test_results_published_before_a_kill_are_not_scored_again(tmp_path, pacs):
    config = node_config(tmp_path / "state", pacs.destination())
    uid = generate_uid()
    with NodeStore(config.state_dir) as store:
        worker, spool = make_worker(config, store)
        for path in ct_series(tmp_path / "src", uid):
            spool.store_instance(path.read_bytes(), uid, pydicom.dcmread(path).SOPInstanceUID)
        store.queue_quiet_studies(0)
        key = store.claim("queued", "scoring", "score_attempts")
        worker.score(key)  # published and recorded as scored; now pretend the record was lost
        seg = result_objects(worker.results_folder(key))
        store.set_state(key, "scoring")
    with NodeStore(config.state_dir) as store:  # restart
        store.recover(config.score_attempts)
        worker, _ = make_worker(config, store)
        run_until_idle(worker)
        assert store.row(key).state == SENT and store.row(key).score_attempts == 2
        assert result_objects(worker.results_folder(key)) == seg  # the same objects, not a second scoring
        assert len(pacs.received) == len(seg)


def test_the_service_runs_until_stopped_and_scores_what_arrives(tmp_path, pacs):
    config = node_config(tmp_path / "state", pacs.destination())
    service = NodeService(config)
    ready = threading.Event()
    ports: list[int] = []
    thread = threading.Thread(target=service.run, kwargs=dict(on_ready=lambda p: (ports.append(p), ready.set()),
                                                              handle_signals=False))
    thread.start()
    try:
        assert ready.wait(120)
        uid = generate_uid()
        send(ct_series(tmp_path / "src", uid), ports[0])
        deadline = time.time() + 120
        while time.time() < deadline and not pacs.received:
            time.sleep(0.1)
    finally:
        service.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert pacs.received and {str(ds.StudyInstanceUID) for ds in pacs.received} == {uid}
    with NodeStore(config.state_dir) as store:
        assert store.counts()[SENT] == 1 and store.counts()[SCORED] == 0
