"""The sign-off store: one embedded SQLite file under the dashboard's output folder.

Why SQLite: several browser sessions (and reviewers) write at once; SQLite gives transactions
and locking without a server.  Each call opens a short-lived connection, so the store is safe to
use from Streamlit's per-session threads.  Every change to a review is written in the SAME
transaction as an audit row holding the before/after state, so the trail can never miss an edit.

The schema is versioned with ``PRAGMA user_version`` and upgraded by an append-only list of
migrations when the store is opened; a file written by a newer version is refused rather than
silently misread.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from adaptclip_med.errors import AdaptClipError, InputError

STORE_FILE = "reviews.sqlite"

#: Decision codes and their labels; a study without a review is "unread".
DECISIONS: dict[str, str] = {"confirmed": "Confirmed anomaly", "false_positive": "False positive", "normal": "Normal"}
UNREAD = "unread"
STATUS_LABELS: dict[str, str] = {UNREAD: "Unread", **DECISIONS}

#: Append-only: never edit a released entry, add a new one.  Index i upgrades user_version i -> i+1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE studies (
        study_key TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        source_path TEXT,
        series_key TEXT,
        output_dir TEXT,
        added_at TEXT NOT NULL
    );
    CREATE TABLE reviews (
        study_key TEXT PRIMARY KEY,
        decision TEXT NOT NULL CHECK (decision IN ('confirmed', 'false_positive', 'normal')),
        notes TEXT NOT NULL DEFAULT '',
        threshold_override REAL,
        reviewer TEXT NOT NULL,
        reviewed_at TEXT NOT NULL,
        revision INTEGER NOT NULL
    );
    CREATE TABLE findings (
        study_key TEXT NOT NULL,
        finding_id INTEGER NOT NULL,
        description TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (study_key, finding_id)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        study_key TEXT NOT NULL,
        action TEXT NOT NULL,
        before TEXT,
        after TEXT
    );
    CREATE INDEX audit_by_study ON audit (study_key, id);
    """,
)


class StaleRevisionError(InputError):
    """A sign-off based on a revision that someone else has amended meanwhile."""


@dataclass(frozen=True)
class StudyLocation:
    """Source images (a DICOM folder + series key, or a NIfTI file) and the result folder of a study."""

    source: Path | None = None
    series_key: str | None = None
    output_dir: Path | None = None


@dataclass(frozen=True)
class FindingNote:
    """A reviewer's note on one finding (a connected region of the mask), with what it was."""

    finding_id: int
    description: str
    note: str = ""


@dataclass(frozen=True)
class Review:
    study_key: str
    decision: str
    reviewer: str
    reviewed_at: str
    notes: str = ""
    threshold_override: float | None = None
    revision: int = 1
    findings: tuple[FindingNote, ...] = field(default_factory=tuple)

    @property
    def decision_label(self) -> str:
        return DECISIONS[self.decision]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    reviewer: str
    study_key: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def migrate(connection: sqlite3.Connection, migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the schema to ``len(migrations)``; each step commits together with its version bump."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise AdaptClipError(f"{STORE_FILE}: written by a newer adaptclip-med (schema {version} > {len(migrations)}); upgrade the software")
    for target in range(version + 1, len(migrations) + 1):
        # executescript would COMMIT on its own; run statements one by one inside one transaction.
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migrations[target - 1]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {target}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return len(migrations)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


class ReviewStore:
    """Reviews, per-finding notes, known studies and the audit trail of one output folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode = WAL")
            migrate(connection)

    @classmethod
    def in_folder(cls, output_dir: Path) -> "ReviewStore":
        return cls(Path(output_dir) / STORE_FILE)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path.name}: cannot open the review database ({exc})") from exc
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    # ---------------------------------------------------------------------------- studies
    def register_study(self, study_key: str, origin: str, location: StudyLocation) -> None:
        """Remember where a study's images and results are, so it can be reopened after a reload."""
        with self._write() as connection:
            connection.execute(
                "INSERT INTO studies (study_key, origin, source_path, series_key, output_dir, added_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study_key) DO UPDATE SET "
                "source_path = COALESCE(excluded.source_path, source_path), "
                "series_key = COALESCE(excluded.series_key, series_key), "
                "output_dir = COALESCE(excluded.output_dir, output_dir)",
                (study_key, origin, _text(location.source), location.series_key, _text(location.output_dir), utc_now()))

    def study_location(self, study_key: str) -> StudyLocation:
        """Where a study's images and results were recorded (all None when unknown)."""
        with self._connect() as connection:
            row = connection.execute("SELECT source_path, series_key, output_dir FROM studies WHERE study_key = ?",
                                     (study_key,)).fetchone()
        if row is None:
            return StudyLocation()
        return StudyLocation(Path(row[0]) if row[0] else None, row[1], Path(row[2]) if row[2] else None)

    def registered_studies(self) -> list[tuple[str, Path | None]]:
        """(study key, result folder) of the studies this dashboard opened or scored itself."""
        with self._connect() as connection:
            rows = connection.execute("SELECT study_key, output_dir FROM studies ORDER BY added_at").fetchall()
        return [(key, Path(out) if out else None) for key, out in rows]

    # ---------------------------------------------------------------------------- reviews
    def sign_off(self, study_key: str, decision: str, reviewer: str, notes: str = "",
                 findings: Sequence[FindingNote] = (), threshold_override: float | None = None,
                 expected_revision: int | None = None) -> Review:
        """Record (or amend) the decision on a study; the previous state goes to the audit trail.

        ``expected_revision`` is the revision the reviewer was looking at (0: none yet).  When the
        stored revision differs, somebody signed off meanwhile: :class:`StaleRevisionError` is raised
        and nothing is written, so a concurrent sign-off is never silently overwritten."""
        reviewer = reviewer.strip()
        if decision not in DECISIONS:
            raise InputError(f"decision '{decision}' is not one of {', '.join(DECISIONS)}")
        if not reviewer:
            raise InputError("a sign-off needs the reviewer's name")
        if threshold_override is not None and not 0.0 <= threshold_override <= 1.0:
            raise InputError(f"threshold override {threshold_override} must be between 0 and 1")
        with self._write() as connection:
            before = _read_review(connection, study_key)
            current = before.revision if before else 0
            if expected_revision is not None and current != expected_revision:
                who = f" by {before.reviewer} at {before.reviewed_at.replace('T', ' ').replace('+00:00', ' UTC')}" if before else ""
                raise StaleRevisionError(f"study {study_key} was signed off meanwhile (revision {current}{who}); "
                                         f"your sign-off on revision {expected_revision} was not saved: review the "
                                         "newer decision, then amend it if needed")
            review = Review(study_key, decision, reviewer, utc_now(), notes.strip(),
                            None if threshold_override is None else float(threshold_override),
                            (before.revision + 1) if before else 1, tuple(findings))
            connection.execute(
                "INSERT INTO reviews (study_key, decision, notes, threshold_override, reviewer, reviewed_at, revision) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (study_key) DO UPDATE SET decision = excluded.decision, "
                "notes = excluded.notes, threshold_override = excluded.threshold_override, reviewer = excluded.reviewer, "
                "reviewed_at = excluded.reviewed_at, revision = excluded.revision",
                (study_key, review.decision, review.notes, review.threshold_override, review.reviewer, review.reviewed_at,
                 review.revision))
            connection.execute("DELETE FROM findings WHERE study_key = ?", (study_key,))
            connection.executemany(
                "INSERT INTO findings (study_key, finding_id, description, note) VALUES (?, ?, ?, ?)",
                [(study_key, f.finding_id, f.description, f.note.strip()) for f in review.findings])
            _audit(connection, reviewer, study_key, "amend" if before else "sign_off",
                   asdict(before) if before else None, asdict(review))
        return review

    def review(self, study_key: str) -> Review | None:
        with self._connect() as connection:
            return _read_review(connection, study_key)

    def status(self, study_key: str) -> str:
        review = self.review(study_key)
        return review.decision if review else UNREAD

    def statuses(self) -> dict[str, str]:
        """Decision of every reviewed study (absent keys are unread)."""
        with self._connect() as connection:
            return dict(connection.execute("SELECT study_key, decision FROM reviews").fetchall())

    def record_event(self, study_key: str, reviewer: str, action: str, detail: dict[str, Any]) -> None:
        """Audit something that is not a decision (an export, a re-score)."""
        with self._write() as connection:
            _audit(connection, reviewer or "unknown", study_key, action, None, detail)

    def audit_trail(self, study_key: str | None = None) -> list[AuditEntry]:
        query = "SELECT id, at, reviewer, study_key, action, before, after FROM audit"
        args: tuple[Any, ...] = ()
        if study_key is not None:
            query += " WHERE study_key = ?"
            args = (study_key,)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY id", args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6])) for r in rows]


def _read_review(connection: sqlite3.Connection, study_key: str) -> Review | None:
    row = connection.execute(
        "SELECT decision, notes, threshold_override, reviewer, reviewed_at, revision FROM reviews WHERE study_key = ?",
        (study_key,)).fetchone()
    if row is None:
        return None
    findings = tuple(FindingNote(int(fid), desc, note) for fid, desc, note in connection.execute(
        "SELECT finding_id, description, note FROM findings WHERE study_key = ? ORDER BY finding_id", (study_key,)))
    return Review(study_key, row[0], row[3], row[4], row[1], row[2], int(row[5]), findings)


def _audit(connection: sqlite3.Connection, reviewer: str, study_key: str, action: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    connection.execute("INSERT INTO audit (at, reviewer, study_key, action, before, after) VALUES (?, ?, ?, ?, ?, ?)",
                       (utc_now(), reviewer, study_key, action, _dumps(before), _dumps(after)))


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _loads(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)


def _create_private(path: Path) -> None:
    """The database holds reviewer names, decisions and where each study's images are: it (and
    the WAL/shared-memory files SQLite creates with the same mode) is readable by its owner only.
    An existing database is narrowed to that mode too."""
    from adaptclip_med.utils.atomic import PRIVATE_FILE_MODE

    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        os.chmod(path, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise InputError(f"{path.name}: cannot create the review database ({exc.strerror or type(exc).__name__})") from exc


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
