"""The node's durable queue: quiet period, one claim per study, crash recovery, no UIDs outside it."""

from __future__ import annotations

import sqlite3

from adaptclip_med.node.store import FAILED, QUEUED, RECEIVING, SCORED, SCORING, SENDING, SENT, NodeStore

STUDY = "1.2.826.0.1.3680043.8.498.12345678901234567890"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_study_is_complete_only_after_the_quiet_period_and_new_instances_restart_it(tmp_path):
    clock = Clock()
    with NodeStore(tmp_path, clock=clock) as store:
        key = store.record_instance(STUDY, STUDY + ".1").study_key
        clock.now += 5
        assert store.queue_quiet_studies(10) == []
        clock.now += 6  # 11 s since the last instance
        store.record_instance(STUDY, STUDY + ".2")  # a second series arrives: the clock restarts
        clock.now += 9
        assert store.queue_quiet_studies(10) == []
        clock.now += 1
        assert store.queue_quiet_studies(10) == [key]
        assert store.row(key).state == QUEUED and store.row(key).instances == 2
        store.record_instance(STUDY, STUDY + ".3")  # still queued, not scored: back to receiving
        assert store.row(key).state == RECEIVING and store.row(key).instances == 3


def test_a_repeated_instance_is_counted_once(tmp_path):
    with NodeStore(tmp_path) as store:
        first = store.record_instance(STUDY, STUDY + ".1")
        again = store.record_instance(STUDY, STUDY + ".1")
        assert first.new_instance and not again.new_instance
        assert store.row(first.study_key).instances == 1


def test_each_study_is_claimed_once_and_attempts_are_counted(tmp_path):
    clock = Clock()
    with NodeStore(tmp_path, clock=clock) as store:
        key = store.record_instance(STUDY, STUDY + ".1").study_key
        store.queue_quiet_studies(0)
        assert store.claim(QUEUED, SCORING, "score_attempts") == key
        assert store.claim(QUEUED, SCORING, "score_attempts") is None
        assert store.set_state(key, SCORED, score=0.7, from_states=(SCORING,))
        assert not store.set_state(key, SENT, from_states=(SENDING,))  # not sending: refused
        assert store.claim(SCORED, SENDING, "send_attempts") == key
        store.set_state(key, SCORED, error="destination did not answer", retry_in=30)
        assert store.claim(SCORED, SENDING, "send_attempts") is None  # not before the retry delay
        clock.now += 31
        assert store.claim(SCORED, SENDING, "send_attempts") == key
        row = store.row(key)
        assert (row.score_attempts, row.send_attempts, row.score) == (1, 2, 0.7)
        assert store.counts()[SENDING] == 1


def test_late_instances_of_a_scored_study_are_kept_but_do_not_rescore_it(tmp_path):
    with NodeStore(tmp_path) as store:
        key = store.record_instance(STUDY, STUDY + ".1").study_key
        store.queue_quiet_studies(0)
        store.claim(QUEUED, SCORING, "score_attempts")
        arrival = store.record_instance(STUDY, STUDY + ".9")
        assert arrival.late and store.row(key).state == SCORING and store.row(key).late_instances == 1


def test_recovery_after_a_kill_requeues_scoring_resends_sending_and_gives_up_on_crash_loops(tmp_path):
    with NodeStore(tmp_path) as store:
        keys = [store.record_instance(f"{STUDY}{i}", f"{STUDY}{i}.1").study_key for i in range(3)]
        store.queue_quiet_studies(0)
        for key in keys:
            store.claim(QUEUED, SCORING, "score_attempts")
        store.set_state(keys[1], SCORED)
        store.claim(SCORED, SENDING, "send_attempts")
        store.set_state(keys[2], QUEUED)
        store.claim(QUEUED, SCORING, "score_attempts")  # keys[2]: its second attempt
    with NodeStore(tmp_path) as reopened:  # a new process after SIGKILL
        assert reopened.recover(max_score_attempts=2) == {"requeued": 1, "resend": 1, "gave_up": 1}
        assert [reopened.row(k).state for k in keys] == [QUEUED, SCORED, FAILED]
        assert "stopped while scoring" in reopened.row(keys[2]).last_error


def test_recovery_restarts_the_quiet_period_of_studies_still_receiving(tmp_path):
    clock = Clock()
    with NodeStore(tmp_path, clock=clock) as store:
        key = store.record_instance(STUDY, STUDY + ".1").study_key
    clock.now += 60  # the node was down for a minute
    with NodeStore(tmp_path, clock=clock) as store:
        store.recover(max_score_attempts=2)
        assert store.queue_quiet_studies(10) == []  # the cut-off sender gets time to resend
        clock.now += 10
        assert store.queue_quiet_studies(10) == [key]


def test_keys_are_salted_per_node_and_the_uid_lives_only_in_the_database(tmp_path):
    with NodeStore(tmp_path / "a") as a, NodeStore(tmp_path / "b") as b:
        key = a.record_instance(STUDY, STUDY + ".1").study_key
        assert key != b.study_key(STUDY) and STUDY not in key and len(key) == 16
        assert a.study_uid(key) == STUDY
    with NodeStore(tmp_path / "a") as again:
        assert again.study_key(STUDY) == key  # the salt is durable
    db = sqlite3.connect(tmp_path / "a" / "node.sqlite")
    assert db.execute("SELECT study_uid FROM studies").fetchone()[0] == STUDY
