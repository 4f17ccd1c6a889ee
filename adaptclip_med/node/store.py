"""The node's durable queue: one SQLite row per study with its state, in ``<state_dir>/node.sqlite``.

States, in order: ``receiving`` (instances arriving; complete after the quiet period) ->
``queued`` -> ``scoring`` -> ``scored`` (results written under ``results/<key>``) -> ``sending``
-> ``sent``; or ``failed`` with the last error.  Every change is one committed transaction
(WAL, ``synchronous=FULL``, like the batch journal), so after a SIGKILL the database says exactly
where each study was: :meth:`NodeStore.recover` puts a study caught ``scoring`` back in the queue
(its results were never published) and one caught ``sending`` back to ``scored`` (its results are
on disk; sent again with the same SOP Instance UIDs, which a PACS stores once).

The Study Instance UID lives in this database only: folders and log lines use the study's key,
derived from the UID with a random per-node salt, so nothing on disk outside this file links a
folder to an examination.  Several threads (one per association, plus the worker) share one
connection under a lock; ``node status`` reads the file from another process.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.utils.redact import pseudonymous_key

DB_NAME = "node.sqlite"
RECEIVING, QUEUED, SCORING, SCORED, SENDING, SENT, FAILED = (
    "receiving", "queued", "scoring", "scored", "sending", "sent", "failed")
STATES = (RECEIVING, QUEUED, SCORING, SCORED, SENDING, SENT, FAILED)
#: States in which newly arriving instances still count for the study (it is not scored yet).
OPEN_STATES = (RECEIVING, QUEUED)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS studies (
        key TEXT PRIMARY KEY, study_uid TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
        instances INTEGER NOT NULL DEFAULT 0, late_instances INTEGER NOT NULL DEFAULT 0,
        first_received REAL NOT NULL, last_received REAL NOT NULL,
        score_attempts INTEGER NOT NULL DEFAULT 0, send_attempts INTEGER NOT NULL DEFAULT 0,
        score REAL, sent_objects INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
        next_attempt REAL NOT NULL DEFAULT 0, updated REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS instances (
        instance_key TEXT PRIMARY KEY, study_key TEXT NOT NULL, received REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS skipped (reason TEXT PRIMARY KEY, count INTEGER NOT NULL)""",
)


@dataclass(frozen=True)
class StudyRow:
    """One study as ``node status`` shows it (no identifiers; ``study_uid`` is kept out of repr)."""

    key: str
    state: str
    instances: int
    late_instances: int
    first_received: float
    last_received: float
    score_attempts: int
    send_attempts: int
    score: float | None
    sent_objects: int
    last_error: str
    updated: float


_ROW_COLUMNS = ("key", "state", "instances", "late_instances", "first_received", "last_received", "score_attempts",
                "send_attempts", "score", "sent_objects", "last_error", "updated")


@dataclass(frozen=True)
class Arrival:
    """What recording one received instance did: the study's key and whether it was new to it."""

    study_key: str
    new_instance: bool
    late: bool  # the study was already past the quiet period (scoring or later): not rescored


class NodeStore:
    """The queue database (use as a context manager, or :meth:`open`/:meth:`close`)."""

    def __init__(self, state_dir: Path, clock=time.time) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.clock = clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._salt = ""

    def open(self) -> NodeStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._tx() as db:
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM settings WHERE name='salt'").fetchone()
            if row is None:
                db.execute("INSERT INTO settings (name, value) VALUES ('salt', ?)", (secrets.token_hex(16),))
                row = db.execute("SELECT value FROM settings WHERE name='salt'").fetchone()
        self._salt = row[0]
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> NodeStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction under the lock (BEGIN IMMEDIATE: no lost updates)."""
        assert self._db is not None, "store not opened"
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------------------ keys
    def study_key(self, study_uid: str) -> str:
        """The pseudonymous key of a study: salted, so a folder name cannot be matched to a UID
        without this database."""
        return pseudonymous_key("node-study", self._salt, study_uid)

    def instance_key(self, sop_instance_uid: str) -> str:
        return pseudonymous_key("node-instance", self._salt, sop_instance_uid)

    def study_uid(self, key: str) -> str | None:
        with self._tx() as db:
            row = db.execute("SELECT study_uid FROM studies WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------------------ receiving
    def record_instance(self, study_uid: str, sop_instance_uid: str) -> Arrival:
        """Record an instance already written to the spool.  A study still open (receiving or
        queued) goes back to ``receiving`` and its quiet period restarts; a study past it keeps
        its state and counts the instance as late (kept on disk, not rescored)."""
        now = self.clock()
        key, instance = self.study_key(study_uid), self.instance_key(sop_instance_uid)
        with self._tx() as db:
            row = db.execute("SELECT state FROM studies WHERE key=?", (key,)).fetchone()
            new_instance = db.execute("INSERT OR IGNORE INTO instances (instance_key, study_key, received) VALUES (?, ?, ?)",
                                      (instance, key, now)).rowcount == 1
            if row is None:
                db.execute("INSERT INTO studies (key, study_uid, state, instances, first_received, last_received, updated) "
                           "VALUES (?, ?, ?, 1, ?, ?, ?)", (key, study_uid, RECEIVING, now, now, now))
                return Arrival(key, True, False)
            if row[0] in OPEN_STATES:
                db.execute("UPDATE studies SET state=?, instances=instances+?, last_received=?, updated=? WHERE key=?",
                           (RECEIVING, int(new_instance), now, now, key))
                return Arrival(key, new_instance, False)
            db.execute("UPDATE studies SET late_instances=late_instances+?, updated=? WHERE key=?",
                       (int(new_instance), now, key))
            return Arrival(key, new_instance, True)

    def has_instance(self, sop_instance_uid: str) -> bool:
        with self._tx() as db:
            return db.execute("SELECT 1 FROM instances WHERE instance_key=?",
                              (self.instance_key(sop_instance_uid),)).fetchone() is not None

    def count_skipped(self, reason: str) -> None:
        """Count an instance received but not kept (its reason names no identifier)."""
        with self._tx() as db:
            db.execute("INSERT INTO skipped (reason, count) VALUES (?, 1) "
                       "ON CONFLICT(reason) DO UPDATE SET count=count+1", (reason,))

    def skipped(self) -> dict[str, int]:
        with self._tx() as db:
            return dict(db.execute("SELECT reason, count FROM skipped ORDER BY reason").fetchall())

    # ------------------------------------------------------------------------------ the queue
    def queue_quiet_studies(self, quiet_seconds: float) -> list[str]:
        """Studies that received nothing for ``quiet_seconds``: ``receiving`` -> ``queued``."""
        now = self.clock()
        with self._tx() as db:
            keys = [r[0] for r in db.execute("SELECT key FROM studies WHERE state=? AND last_received<=? ORDER BY last_received",
                                             (RECEIVING, now - quiet_seconds))]
            db.executemany("UPDATE studies SET state=?, updated=? WHERE key=?", [(QUEUED, now, k) for k in keys])
        return keys

    def claim(self, source: str, target: str, counter: str | None = None) -> str | None:
        """Move the oldest study in ``source`` to ``target`` (counting an attempt in
        ``counter``) and return its key, or None; one transaction, so two workers never take the
        same study."""
        now = self.clock()
        with self._tx() as db:
            row = db.execute("SELECT key FROM studies WHERE state=? AND next_attempt<=? ORDER BY last_received LIMIT 1",
                             (source, now)).fetchone()
            if row is None:
                return None
            bump = f", {counter}={counter}+1" if counter in ("score_attempts", "send_attempts") else ""
            db.execute(f"UPDATE studies SET state=?, updated=?{bump} WHERE key=?", (target, now, row[0]))
        return row[0]

    def set_state(self, key: str, state: str, *, error: str | None = None, score: float | None = None,
                  sent_objects: int | None = None, from_states: tuple[str, ...] | None = None,
                  retry_in: float = 0.0) -> bool:
        """Change a study's state (only from ``from_states`` when given; not claimable again for
        ``retry_in`` seconds); False if it was not changed."""
        assert state in STATES, state
        now = self.clock()
        sets, values = ["state=?", "updated=?", "next_attempt=?"], [state, now, now + retry_in]
        if error is not None:
            sets.append("last_error=?")
            values.append(error)
        if score is not None:
            sets.append("score=?")
            values.append(float(score))
        if sent_objects is not None:
            sets.append("sent_objects=?")
            values.append(int(sent_objects))
        where, args = "key=?", [key]
        if from_states:
            where += f" AND state IN ({', '.join('?' for _ in from_states)})"
            args += list(from_states)
        with self._tx() as db:
            return db.execute(f"UPDATE studies SET {', '.join(sets)} WHERE {where}", values + args).rowcount == 1

    def recover(self, max_score_attempts: int) -> dict[str, int]:
        """After a crash: ``scoring`` -> ``queued`` (or ``failed`` once the node died this often
        while scoring it, so one study cannot crash-loop the node), ``sending`` -> ``scored``; studies
        still receiving (or queued) get a fresh quiet period from now, since a sender whose
        association the crash cut off resends only after it noticed."""
        now = self.clock()
        with self._tx() as db:
            # a sender cut off by the crash needs time to notice and send again: the quiet period restarts now
            db.execute("UPDATE studies SET state=?, last_received=? WHERE state IN (?, ?)", (RECEIVING, now, RECEIVING, QUEUED))
            gave_up = db.execute("UPDATE studies SET state=?, updated=?, last_error=? WHERE state=? AND score_attempts>=?",
                                 (FAILED, now, f"the node stopped while scoring this study {max_score_attempts} time(s)",
                                  SCORING, max_score_attempts)).rowcount
            requeued = db.execute("UPDATE studies SET state=?, updated=? WHERE state=?", (QUEUED, now, SCORING)).rowcount
            resend = db.execute("UPDATE studies SET state=?, updated=? WHERE state=?", (SCORED, now, SENDING)).rowcount
        return {"requeued": requeued, "resend": resend, "gave_up": gave_up}

    # ------------------------------------------------------------------------------ reading
    def row(self, key: str) -> StudyRow | None:
        with self._tx() as db:
            found = db.execute(f"SELECT {', '.join(_ROW_COLUMNS)} FROM studies WHERE key=?", (key,)).fetchone()
        return StudyRow(*found) if found else None

    def rows(self) -> list[StudyRow]:
        with self._tx() as db:
            found = db.execute(f"SELECT {', '.join(_ROW_COLUMNS)} FROM studies ORDER BY first_received").fetchall()
        return [StudyRow(*r) for r in found]

    def counts(self) -> dict[str, int]:
        with self._tx() as db:
            found = dict(db.execute("SELECT state, COUNT(*) FROM studies GROUP BY state").fetchall())
        return {state: int(found.get(state, 0)) for state in STATES}

    def instance_keys(self, study_key: str) -> set[str]:
        with self._tx() as db:
            return {r[0] for r in db.execute("SELECT instance_key FROM instances WHERE study_key=?", (study_key,))}
