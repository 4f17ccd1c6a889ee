"""The run journal: what happened to every study, durable across crashes.

A batch may be killed at any moment (SIGKILL, power loss, the scheduler's time limit).  Each
finished study is committed to an SQLite database in one transaction, so after a restart the
journal says exactly which studies are done; the worklist is regenerated from it instead of being
appended to, which is what rules out duplicate rows.

Each rank owns one database (``.batch/journal-rank-NNN.sqlite``) guarded by a lock file: SQLite
over shared network filesystems is unsafe with concurrent writers, and a second run on the same
output folder must be refused, not interleaved.  Readers merge every journal they can see, newest
record per study first, so a resume with a different number of ranks still skips finished work.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from filelock import FileLock, Timeout

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils.redact import describe_path

STATE_DIR = ".batch"
DONE = "done"
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    key TEXT PRIMARY KEY, status TEXT NOT NULL, score REAL, top_slice INTEGER, series TEXT NOT NULL,
    reason TEXT NOT NULL, output TEXT NOT NULL, notes TEXT NOT NULL, seconds REAL NOT NULL, updated REAL NOT NULL,
    comparability TEXT NOT NULL DEFAULT ''
)"""
#: Columns added after the first schema: (name, declaration), added to older journals on open.
_ADDED_COLUMNS = (("comparability", "TEXT NOT NULL DEFAULT ''"),)


@dataclass(frozen=True)
class StudyRecord:
    """The outcome of one study, as shown in worklist.csv / errors.csv (no identifiers)."""

    key: str
    status: str
    score: float | None = None
    top_slice: int | None = None
    series: str = ""
    reason: str = ""
    output: str = ""
    notes: str = ""
    seconds: float = 0.0
    updated: float = 0.0
    #: the comparability guard's one line (volume/comparability.py), "" for failed studies
    comparability: str = ""


_COLUMNS = [f.name for f in fields(StudyRecord)]


def journal_path(out_dir: Path, rank: int) -> Path:
    return Path(out_dir) / STATE_DIR / f"journal-rank-{rank:03d}.sqlite"


class Journal:
    """This rank's journal, opened for writing (use as a context manager)."""

    def __init__(self, out_dir: Path, rank: int = 0) -> None:
        self.path = journal_path(out_dir, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path.with_suffix(".lock")))
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> Journal:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise AdaptClipError(f"{describe_path(self.path.parent.parent)}: another batch run is writing to this output "
                                 f"folder (rank journal locked); wait for it or use another --out") from None
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        _add_missing_columns(self._db)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._lock.release()

    def record(self, record: StudyRecord) -> StudyRecord:
        """Commit one outcome (replacing the study's previous one) before returning."""
        assert self._db is not None, "journal not opened"
        stamped = StudyRecord(**{**asdict(record), "updated": time.time()})
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._db:
            self._db.execute(f"INSERT OR REPLACE INTO studies ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                             [getattr(stamped, c) for c in _COLUMNS])
        return stamped


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A journal written by an earlier version lacks the newer columns: add them (resume works)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(studies)")}
    for name, declaration in _ADDED_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE studies ADD COLUMN {name} {declaration}")


def read_journals(out_dir: Path) -> dict[str, StudyRecord]:
    """Newest record per study over every rank's journal in ``out_dir``."""
    merged: dict[str, StudyRecord] = {}
    for path in sorted((Path(out_dir) / STATE_DIR).glob("journal-rank-*.sqlite")):
        db = sqlite3.connect(path)
        try:
            present = {row[1] for row in db.execute("PRAGMA table_info(studies)")}
            columns = [c if c in present else f"'' AS {c}" for c in _COLUMNS]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM studies").fetchall() if present else []
        except sqlite3.OperationalError:
            rows = []  # a journal created but killed before its table existed
        finally:
            db.close()
        for row in rows:
            record = StudyRecord(*row)
            if record.key not in merged or record.updated > merged[record.key].updated:
                merged[record.key] = record
    return merged
