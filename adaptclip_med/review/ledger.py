"""The tamper-evident part of the review store: hashes that chain every row to the one before.

Why: SQLite rows can be edited with any SQLite tool, leaving no trace.  Each audit row carries
``row_hash = sha256(previous row's hash + its own content)``; each review row carries the hash of
the audit row written with it plus a hash of its own content (findings included).  Changing,
deleting or reordering a row then breaks a link that :func:`verify` finds and names.  Deleting the
newest rows (truncating the tail) is caught by the reviews that point at them and, for anything
later, by comparing with a chain head printed in an export (``review verify --head``).

This is tamper *evidence*, not prevention: someone who can write the file and knows the scheme
can re-hash a whole forged chain; the chain heads in exports (kept outside the store) bound that.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

GENESIS = "0" * 64  # the "previous hash" of the first audit row
DECISION_ACTIONS = ("sign_off", "amend")


def audit_hash(prev_hash: str, at: str, reviewer: str, reviewer_id: str, study_key: str, action: str,
               before: str | None, after: str | None) -> str:
    """Hash of one audit row: its content (not its rowid) chained to the previous row's hash."""
    return _digest([prev_hash, at, reviewer, reviewer_id, study_key, action, before, after])


def review_hash(audit_row_hash: str, study_key: str, decision: str, notes: str, threshold_override: float | None,
                reviewer: str, reviewer_id: str, reviewed_at: str, revision: int,
                findings: Sequence[tuple[int, str, str]], measurements: str = "[]") -> str:
    """Hash of a review row with its findings and the reader's measurements (their JSON text, as
    stored), tied to the audit row that recorded it.  A review without measurements hashes as
    before they existed, so rows written earlier still verify."""
    values = [audit_row_hash, study_key, decision, notes, threshold_override, reviewer, reviewer_id, reviewed_at,
              int(revision), [list(f) for f in findings]]
    if measurements not in ("", "[]"):
        values.append(measurements)
    return _digest(values)


def _digest(values: list[Any]) -> str:
    return hashlib.sha256(json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def chain_head(connection: sqlite3.Connection) -> str:
    """Hash of the newest audit row (GENESIS for an empty trail)."""
    row = connection.execute("SELECT row_hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return row[0] if row and row[0] else GENESIS


def append_audit(connection: sqlite3.Connection, at: str, reviewer: str, reviewer_id: str, study_key: str, action: str,
                 before: str | None, after: str | None) -> str:
    """Insert one audit row chained to the current head; returns its hash.  Call inside the write
    transaction (BEGIN IMMEDIATE), so no other writer can slip a row in between."""
    previous = chain_head(connection)
    row_hash = audit_hash(previous, at, reviewer, reviewer_id, study_key, action, before, after)
    connection.execute("INSERT INTO audit (at, reviewer, reviewer_id, study_key, action, before, after, prev_hash, row_hash) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (at, reviewer, reviewer_id, study_key, action, before, after, previous, row_hash))
    return row_hash


def seal_review(connection: sqlite3.Connection, study_key: str, audit_row_hash: str) -> None:
    """(Re)compute the hash of a study's review row after writing it and its findings."""
    row = connection.execute("SELECT decision, notes, threshold_override, reviewer, reviewer_id, reviewed_at, revision "
                             "FROM reviews WHERE study_key = ?", (study_key,)).fetchone()
    digest = review_hash(audit_row_hash, study_key, *row, _findings(connection, study_key),
                         _measurements(connection, study_key))
    connection.execute("UPDATE reviews SET audit_hash = ?, row_hash = ? WHERE study_key = ?",
                       (audit_row_hash, digest, study_key))


def _findings(connection: sqlite3.Connection, study_key: str) -> list[tuple]:
    """The findings hashed with a review: (id, description, note), plus "rejected" for a finding
    the reader rejected (accepted ones hash as before the verdict existed, so older rows verify)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(findings)")}
    if "verdict" not in columns:  # before migration 4
        return [(int(a), b, c) for a, b, c in connection.execute(
            "SELECT finding_id, description, note FROM findings WHERE study_key = ? ORDER BY finding_id", (study_key,))]
    return [(int(a), b, c) if v != "rejected" else (int(a), b, c, v) for a, b, c, v in connection.execute(
        "SELECT finding_id, description, note, verdict FROM findings WHERE study_key = ? ORDER BY finding_id",
        (study_key,))]


def _measurements(connection: sqlite3.Connection, study_key: str) -> str:
    """The review's measurements column as stored ("[]" before migration 5 added it)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(reviews)")}
    if "measurements" not in columns:
        return "[]"
    row = connection.execute("SELECT measurements FROM reviews WHERE study_key = ?", (study_key,)).fetchone()
    return row[0] if row and row[0] is not None else "[]"


def seal_existing(connection: sqlite3.Connection) -> None:
    """Migration step: chain the rows written before the store had hashes (they were unprotected
    until now; from here on any change to them is detected)."""
    previous = GENESIS
    rows = connection.execute("SELECT id, at, reviewer, reviewer_id, study_key, action, before, after FROM audit ORDER BY id").fetchall()
    for row_id, *content in rows:
        previous_row = previous
        previous = audit_hash(previous_row, *content)
        connection.execute("UPDATE audit SET prev_hash = ?, row_hash = ? WHERE id = ?", (previous_row, previous, row_id))
    for (study_key,) in connection.execute("SELECT study_key FROM reviews").fetchall():
        latest = connection.execute("SELECT row_hash FROM audit WHERE study_key = ? AND action IN ('sign_off', 'amend') "
                                    "ORDER BY id DESC LIMIT 1", (study_key,)).fetchone()
        seal_review(connection, study_key, latest[0] if latest else GENESIS)


@dataclass(frozen=True)
class Verification:
    """Outcome of :func:`verify`: ``problem`` is None when the record is intact."""

    audit_rows: int
    reviews: int
    head: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(connection: sqlite3.Connection, expected_head: str | None = None) -> Verification:
    """Check every link; the first broken one is named (row id, or the study's pseudonymous key)."""
    audit = connection.execute("SELECT id, at, reviewer, reviewer_id, study_key, action, before, after, prev_hash, row_hash "
                               "FROM audit ORDER BY id").fetchall()
    reviews = connection.execute("SELECT study_key, decision, notes, threshold_override, reviewer, reviewer_id, reviewed_at, "
                                 "revision, audit_hash, row_hash FROM reviews ORDER BY study_key").fetchall()
    head = audit[-1][9] if audit and audit[-1][9] else GENESIS
    result = lambda problem: Verification(len(audit), len(reviews), head, problem)  # noqa: E731
    problem = _audit_problem(audit)
    if problem is None:
        problem = _review_problem(connection, audit, reviews)
    if problem is None and expected_head and expected_head != head:
        known = {row[9] for row in audit}
        problem = (f"the exported chain head {expected_head[:12]}... is not in the audit trail: rows were deleted or "
                   "rewritten" if expected_head not in known else None)
    return result(problem)


def _audit_problem(audit: list[tuple]) -> str | None:
    position = {row[9]: index for index, row in enumerate(audit)}
    previous, previous_id = GENESIS, None
    for index, (row_id, at, reviewer, reviewer_id, study_key, action, before, after, prev_hash, row_hash) in enumerate(audit):
        if audit_hash(prev_hash or "", at, reviewer, reviewer_id, study_key, action, before, after) != row_hash:
            return f"audit row {row_id} was edited (its content no longer matches its hash)"
        if prev_hash != previous:
            where = f"after audit row {previous_id}" if previous_id is not None else "at the start of the trail"
            if prev_hash in position and position[prev_hash] != index - 1:
                return f"audit row {row_id} is out of order (rows were reordered {where})"
            return f"an audit row before row {row_id} was deleted ({where})"
        previous, previous_id = row_hash, row_id
    return None


def _review_problem(connection: sqlite3.Connection, audit: list[tuple], reviews: list[tuple]) -> str | None:
    by_hash = {row[9]: row for row in audit}
    referenced = set()
    for study_key, decision, notes, override, reviewer, reviewer_id, reviewed_at, revision, linked, row_hash in reviews:
        expected = review_hash(linked or "", study_key, decision, notes, override, reviewer, reviewer_id, reviewed_at,
                               revision, _findings(connection, study_key), _measurements(connection, study_key))
        if expected != row_hash:
            return (f"the review of study {study_key} was edited (its content, findings or measurements no longer "
                    "match its hash)")
        source = by_hash.get(linked)
        if source is None or source[5] not in DECISION_ACTIONS or json.loads(source[7] or "{}").get("revision") != revision:
            return f"the review of study {study_key} has no matching sign-off in the audit trail (audit rows deleted?)"
        referenced.add(linked)
    latest: dict[str, tuple] = {}
    for row in audit:
        if row[5] in DECISION_ACTIONS:
            latest[row[4]] = row
    for study_key, row in latest.items():
        if row[9] not in referenced:
            return (f"the review of study {study_key} was deleted or replaced (audit row {row[0]} records a newer "
                    "decision than the stored one)")
    return None
