"""The sign-off store: one embedded SQLite file under the dashboard's output folder.

Why SQLite: several browser sessions (and reviewers) write at once; SQLite gives transactions
and locking without a server.  Each call opens a short-lived connection, so the store is safe to
use from Streamlit's per-session threads.  Every change to a review is written in the SAME
transaction as an audit row holding the before/after state, so the trail can never miss an edit.
Every row is hash-chained (:mod:`adaptclip_med.review.ledger`), so an edit, deletion or reordering
made outside this class is found by ``adaptclip-med review verify``.  The file is created readable
by its owner only (mode 0600): it names reviewers and their decisions.

Who acts is an authenticated :class:`~adaptclip_med.review.access.Identity`; a sign-off is refused
here (not only in the page) unless that identity holds the ``sign_off`` permission.

The schema is versioned with ``PRAGMA user_version`` and upgraded by an append-only list of
migrations when the store is opened; a file written by a newer version is refused rather than
silently misread.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.review import ledger
from adaptclip_med.review.access import SIGN_OFF, Identity, require

STORE_FILE = "reviews.sqlite"

#: Decision codes and their labels; a study without a review is "unread".
DECISIONS: dict[str, str] = {"confirmed": "Confirmed anomaly", "false_positive": "False positive", "normal": "Normal"}
UNREAD = "unread"
STATUS_LABELS: dict[str, str] = {UNREAD: "Unread", **DECISIONS}

#: A migration step: SQL statements, or a function run inside the step's transaction.
Migration = Union[str, Callable[[sqlite3.Connection], None]]

#: Append-only: never edit a released entry, add a new one.  Index i upgrades user_version i -> i+1.
MIGRATIONS: tuple[Migration, ...] = (
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
    # 2: who acted (issuer#subject) and the hash chain (ledger.py)
    """
    ALTER TABLE reviews ADD COLUMN reviewer_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE reviews ADD COLUMN audit_hash TEXT;
    ALTER TABLE reviews ADD COLUMN row_hash TEXT;
    ALTER TABLE audit ADD COLUMN reviewer_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN prev_hash TEXT;
    ALTER TABLE audit ADD COLUMN row_hash TEXT
    """,
    ledger.seal_existing,
    # 4: per-finding review: the reader accepts or rejects each finding
    "ALTER TABLE findings ADD COLUMN verdict TEXT NOT NULL DEFAULT 'accepted'",
    # 5: the reader's measurements (review/measurements.py), JSON, kept with the sign-off and hashed
    "ALTER TABLE reviews ADD COLUMN measurements TEXT NOT NULL DEFAULT '[]'",
)

ACCEPTED, REJECTED = "accepted", "rejected"
VERDICTS = (ACCEPTED, REJECTED)


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
    """A reviewer's verdict and note on one finding (a connected region of the mask), with what it was.

    ``verdict``: "accepted" (the region is real: it goes into the reviewed SEG/SR) or "rejected"
    (left out of them, and named in the audit trail)."""

    finding_id: int
    description: str
    note: str = ""
    verdict: str = "accepted"


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
    reviewer_id: str = ""  # issuer#subject of the authenticated reviewer
    record_hash: str = ""  # hash of the audit row that recorded this revision (quoted in exports)
    #: the reader's measurements (``Measurement.as_dict()``: kind, slice, points, length / mean / SD / area)
    measurements: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def decision_label(self) -> str:
        return DECISIONS[self.decision]

    def audited(self) -> dict[str, Any]:
        """The state written to the audit trail (everything but the hash of that very row)."""
        return {"study_key": self.study_key, "decision": self.decision, "reviewer": self.reviewer,
                "reviewer_id": self.reviewer_id, "reviewed_at": self.reviewed_at, "notes": self.notes,
                "threshold_override": self.threshold_override, "revision": self.revision,
                "findings": [{"finding_id": f.finding_id, "description": f.description, "note": f.note,
                              "verdict": f.verdict} for f in self.findings],
                "rejected_findings": [f.finding_id for f in self.findings if f.verdict == REJECTED],
                **({"measurements": list(self.measurements)} if self.measurements else {})}

    def accepted_ids(self) -> set[int] | None:
        """Ids of the findings the reader accepted; None when the review judged no finding one by
        one (an older review, or none listed): then the whole reviewed mask stands."""
        if not self.findings:
            return None
        return {f.finding_id for f in self.findings if f.verdict != REJECTED}


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    reviewer: str
    study_key: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reviewer_id: str = ""


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
            step = migrations[target - 1]
            if callable(step):
                step(connection)
            else:
                for statement in _statements(step):
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
        _owner_only(self.path)
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

    def study_keys(self) -> set[str]:
        """Every study key the store holds a record of (registered, signed off or audited)."""
        with self._connect() as connection:
            rows = connection.execute("SELECT study_key FROM studies UNION SELECT study_key FROM reviews "
                                      "UNION SELECT study_key FROM audit").fetchall()
        return {row[0] for row in rows}

    def registered_studies(self) -> list[tuple[str, Path | None]]:
        """(study key, result folder) of the studies this dashboard opened or scored itself."""
        with self._connect() as connection:
            rows = connection.execute("SELECT study_key, output_dir FROM studies ORDER BY added_at").fetchall()
        return [(key, Path(out) if out else None) for key, out in rows]

    # ---------------------------------------------------------------------------- reviews
    def sign_off(self, study_key: str, decision: str, who: Identity, notes: str = "",
                 findings: Sequence[FindingNote] = (), threshold_override: float | None = None,
                 expected_revision: int | None = None, measurements: Sequence[dict[str, Any]] = ()) -> Review:
        """Record (or amend) the decision on a study; the previous state goes to the audit trail.

        ``expected_revision`` is the revision the reviewer was looking at (0: none yet).  When the
        stored revision differs, somebody signed off meanwhile: :class:`StaleRevisionError` is raised
        and nothing is written, so a concurrent sign-off is never silently overwritten.  ``who`` must
        hold the ``sign_off`` permission (:class:`~adaptclip_med.review.access.AccessDenied`)."""
        require(who, SIGN_OFF)
        reviewer = who.display.strip()
        if decision not in DECISIONS:
            raise InputError(f"decision '{decision}' is not one of {', '.join(DECISIONS)}")
        if not reviewer:
            raise InputError("a sign-off needs the reviewer's name")
        if any(f.verdict not in VERDICTS for f in findings):
            raise InputError(f"a finding's verdict must be one of {', '.join(VERDICTS)}")
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
                            (before.revision + 1) if before else 1, tuple(findings), who.key,
                            measurements=tuple(dict(m) for m in measurements))
            connection.execute(
                "INSERT INTO reviews (study_key, decision, notes, threshold_override, reviewer, reviewer_id, reviewed_at, revision) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (study_key) DO UPDATE SET decision = excluded.decision, "
                "notes = excluded.notes, threshold_override = excluded.threshold_override, reviewer = excluded.reviewer, "
                "reviewer_id = excluded.reviewer_id, reviewed_at = excluded.reviewed_at, revision = excluded.revision",
                (study_key, review.decision, review.notes, review.threshold_override, review.reviewer, review.reviewer_id,
                 review.reviewed_at, review.revision))
            connection.execute("UPDATE reviews SET measurements = ? WHERE study_key = ?",
                               (_measurements_json(review.measurements), study_key))
            connection.execute("DELETE FROM findings WHERE study_key = ?", (study_key,))
            connection.executemany(
                "INSERT INTO findings (study_key, finding_id, description, note, verdict) VALUES (?, ?, ?, ?, ?)",
                [(study_key, f.finding_id, f.description, f.note.strip(), f.verdict) for f in review.findings])
            record = _audit(connection, who, study_key, "amend" if before else "sign_off",
                            before.audited() if before else None, review.audited())
            ledger.seal_review(connection, study_key, record)
        return replace(review, record_hash=record)

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

    def record_event(self, study_key: str, who: Identity, action: str, detail: dict[str, Any]) -> str:
        """Audit something that is not a decision (an export, a re-score, a PACS send); returns the
        new chain head.  The caller checks the action's permission before doing it."""
        with self._write() as connection:
            return _audit(connection, who, study_key, action, None, detail)

    def chain_head(self) -> str:
        """Hash of the newest audit row: quoted in exports so a later truncation is provable."""
        with self._connect() as connection:
            return ledger.chain_head(connection)

    def verify(self, expected_head: str | None = None) -> ledger.Verification:
        """Check the hash chain of every audit and review row (see :mod:`ledger`)."""
        with self._connect() as connection:
            return ledger.verify(connection, expected_head)

    def audit_trail(self, study_key: str | None = None) -> list[AuditEntry]:
        query = "SELECT id, at, reviewer, study_key, action, before, after, reviewer_id FROM audit"
        args: tuple[Any, ...] = ()
        if study_key is not None:
            query += " WHERE study_key = ?"
            args = (study_key,)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY id", args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _loads(r[5]), _loads(r[6]), r[7]) for r in rows]


def _read_review(connection: sqlite3.Connection, study_key: str) -> Review | None:
    row = connection.execute(
        "SELECT decision, notes, threshold_override, reviewer, reviewed_at, revision, reviewer_id, audit_hash, measurements "
        "FROM reviews WHERE study_key = ?",
        (study_key,)).fetchone()
    if row is None:
        return None
    findings = tuple(FindingNote(int(fid), desc, note, verdict or ACCEPTED) for fid, desc, note, verdict in connection.execute(
        "SELECT finding_id, description, note, verdict FROM findings WHERE study_key = ? ORDER BY finding_id", (study_key,)))
    return Review(study_key, row[0], row[3], row[4], row[1], row[2], int(row[5]), findings, row[6] or "", row[7] or "",
                  tuple(json.loads(row[8] or "[]")))


def _measurements_json(measurements: Sequence[dict[str, Any]]) -> str:
    """Canonical JSON of the measurements (sorted keys): the text the row hash covers."""
    return json.dumps(list(measurements), sort_keys=True, separators=(",", ":"))


def _audit(connection: sqlite3.Connection, who: Identity, study_key: str, action: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    return ledger.append_audit(connection, utc_now(), who.display, who.key, study_key, action, _dumps(before), _dumps(after))


def _owner_only(path: Path) -> None:
    """Create the store (and its WAL/SHM side files, which SQLite gives the same mode) as 0600."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists() and candidate.stat().st_mode & 0o077:
            candidate.chmod(0o600)


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _loads(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
